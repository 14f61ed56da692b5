// Runs a little Python through shmrepl and prints its output as it arrives.
// Build and run (see bindings/csharp/README.md):
//   bindings/csharp/build.sh /tmp/cs && LD_LIBRARY_PATH=build/lib mono /tmp/cs/Example.exe
using System;
using System.Threading;
using Shmrepl;

static class Example
{
    static int Main()
    {
        using (var client = Client.Connect())          // default socket; starts an engine if none runs
        using (var session = client.OpenSession())
        using (var execution = session.Execute("for i in range(3):\n    print('hello', i)\n"))
        using (var reader = execution.OpenReader())
        {
            Record record;
            while (reader.Next(Timeout.InfiniteTimeSpan, out record))
            {
                if (record.Kind == RecordKind.Output) Console.Write(record.Text);
                if (record.Kind == RecordKind.Finished)
                    Console.WriteLine("[finished: " + record.FinishStatus +
                                      (record.FinishStatus == FinishStatus.Aborted ? ", signal " + record.Signal : "") + "]");
                reader.Release(1);
            }
        }
        return 0;
    }
}
