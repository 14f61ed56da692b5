// A private engine for tests: a fresh socket folder, the engine from $SHMREPL_ENGINE,
// shut down (and the folder removed) at the end. Never the default socket.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using NUnit.Framework;

namespace Shmrepl.Tests
{
    public sealed class TestEngine : IDisposable
    {
        public readonly string Folder;
        public readonly string SocketPath;
        public readonly Client Client;
        readonly List<string> rings = new List<string>();

        public TestEngine()
        {
            Folder = Path.Combine(Path.GetTempPath(), "shmrepl-cs-" + Guid.NewGuid().ToString("N").Substring(0, 12));
            Directory.CreateDirectory(Folder);
            SocketPath = Path.Combine(Folder, "engine.sock");
            Client = Client.Connect(Options(true));
        }

        public ClientOptions Options(bool autostart)
        {
            return new ClientOptions
            {
                SocketPath = SocketPath,
                EnginePath = EnginePath(),
                Autostart = autostart,
                ConnectTimeout = TimeSpan.FromSeconds(10),
            };
        }

        public static string EnginePath()
        {
            string e = Environment.GetEnvironmentVariable("SHMREPL_ENGINE");
            if (string.IsNullOrEmpty(e)) Assert.Fail("set SHMREPL_ENGINE to the shmrepl-engine binary");
            return e;
        }

        // Remembers a ring to remove at the end, in case its engine cannot.
        public void Track(string ring)
        {
            if (!string.IsNullOrEmpty(ring)) rings.Add(ring);
        }

        public static void UnlinkRing(string ring)
        {
            string path = "/dev/shm/" + ring.TrimStart('/');
            if (File.Exists(path)) File.Delete(path);
        }

        public void Dispose()
        {
            Dispose(true);
        }

        public void Dispose(bool shutdown)
        {
            try
            {
                if (shutdown) Client.ShutdownEngine();
            }
            finally
            {
                Client.Dispose();
                foreach (var r in rings) UnlinkRing(r);
                try { Directory.Delete(Folder, true); } catch (IOException) { }
            }
        }
    }

    // A record copied out of the ring, with the zero-copy check done while it was a view.
    public sealed class Copied
    {
        public RecordKind Kind;
        public StreamKind Stream;
        public ulong Seq, ExecutionId;
        public FinishStatus FinishStatus;
        public long ExitCode;
        public int Signal;
        public byte[] Data;
        public bool InsideMapping;
        public ErrorDetails Error;

        public string Text => Encoding.UTF8.GetString(Data);
    }

    public static class Read
    {
        // Every record of the ring until E_EOF, by batches, released after each.
        public static List<Copied> All(Reader reader, int batchSize = 64)
        {
            var list = new List<Copied>();
            var mapping = reader.Mapping();
            while (true)
            {
                Batch batch = reader.NextBatch(batchSize, TimeSpan.FromSeconds(20));
                try
                {
                    if (batch.IsEnd) return list;
                    foreach (Record r in batch) list.Add(Copy(r, mapping));
                }
                finally
                {
                    batch.Dispose();
                }
            }
        }

        public static Copied Copy(Record r, ReaderMapping mapping)
        {
            var c = new Copied
            {
                Kind = r.Kind,
                Stream = r.Stream,
                Seq = r.Seq,
                ExecutionId = r.ExecutionId,
                FinishStatus = r.FinishStatus,
                ExitCode = r.ExitCode,
                Signal = r.Signal,
                Data = r.Data.ToArray(),
                InsideMapping = (r.DataLength == 0 || mapping.Contains(r.Data)) && mapping.Contains(r.Raw) && r.Raw.Length > 0,
            };
            if (r.Kind == RecordKind.Error) c.Error = r.GetError();
            return c;
        }

        public static byte[] StreamBytes(List<Copied> records, StreamKind stream)
        {
            var b = new MemoryStream();
            foreach (var r in records)
                if (r.Kind == RecordKind.Output && r.Stream == stream) b.Write(r.Data, 0, r.Data.Length);
            return b.ToArray();
        }

        public static string Stream(List<Copied> records, StreamKind stream)
        {
            return Encoding.UTF8.GetString(StreamBytes(records, stream));
        }
    }
}
