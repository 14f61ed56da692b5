// The bench reader of tools/bench: attaches to RING (START_OLDEST), reads every record
// until E_EOF in batches of up to 256 released after use, sums data lengths and prints
// records=<N> bytes=<sum> seconds=<attach to EOF>.
using System;
using System.Diagnostics;
using System.Globalization;
using Shmrepl;

static class BenchReader
{
    static int Main(string[] args)
    {
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: mono BenchReader.exe RING");
            return 2;
        }
        try
        {
            Library.EnsureLoaded();
            long records = 0, bytes = 0;
            var sw = Stopwatch.StartNew();
            using (var reader = Reader.Open(args[0], ReaderStart.Oldest))
            {
                while (true)
                {
                    Batch batch = reader.NextBatch(256, System.Threading.Timeout.InfiniteTimeSpan);
                    if (batch.IsEnd) break;
                    int n = batch.Count;
                    for (int i = 0; i < n; i++) bytes += batch.Get(i).DataLength;
                    records += n;
                    batch.Dispose();
                }
            }
            double seconds = sw.Elapsed.TotalSeconds;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "records={0} bytes={1} seconds={2:0.000000}", records, bytes, seconds));
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("BenchReader: " + e.Message);
            return 1;
        }
    }
}
