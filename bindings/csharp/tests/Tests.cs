using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using NUnit.Framework;
using Shmrepl.Interop;

namespace Shmrepl.Tests
{
    [TestFixture]
    public class LayoutTests
    {
        [Test]
        public void StructsHaveTheir11Layout()
        {
            Assert.AreEqual(104, Marshal.SizeOf(typeof(NativeRecord)));
            Assert.AreEqual(40, (int)Marshal.OffsetOf(typeof(NativeRecord), "Data"));
            Assert.AreEqual(56, (int)Marshal.OffsetOf(typeof(NativeRecord), "Raw"));
            Assert.AreEqual(72, (int)Marshal.OffsetOf(typeof(NativeRecord), "ExitCode"));
            Assert.AreEqual(88, (int)Marshal.OffsetOf(typeof(NativeRecord), "Reserved0"));
            Assert.AreEqual(8, Marshal.SizeOf(typeof(NativeReaderOptions)));
            Assert.AreEqual(40, Marshal.SizeOf(typeof(NativeClientOptions)));  // 32 in 1.0
            // shmrepl_execute_options_t grew in 1.1 (72 -> 88): timeout_ns, memory_limit at
            // its end, so the 1.0 prefix (72 bytes, still accepted) is unchanged.
            Assert.AreEqual(88, Marshal.SizeOf(typeof(NativeExecuteOptions)));
            Assert.AreEqual(64, (int)Marshal.OffsetOf(typeof(NativeExecuteOptions), "RingCapacity"));
            Assert.AreEqual(72, (int)Marshal.OffsetOf(typeof(NativeExecuteOptions), "TimeoutNs"));
            Assert.AreEqual(80, (int)Marshal.OffsetOf(typeof(NativeExecuteOptions), "MemoryLimit"));
            Assert.AreEqual(72, (int)Native.ExecuteOptionsSize10);
            Assert.AreEqual(16, Marshal.SizeOf(typeof(NativeBytes)));
            // shmrepl_session_options_t (1.1).
            Assert.AreEqual(48, Marshal.SizeOf(typeof(NativeSessionOptions)));
            Assert.AreEqual(0, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "StructSize"));
            Assert.AreEqual(4, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "Flags"));
            Assert.AreEqual(8, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "WorkingDir"));
            Assert.AreEqual(16, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "Env"));
            Assert.AreEqual(24, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "Envc"));
            Assert.AreEqual(32, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "StdinFdPlusOne"));
            Assert.AreEqual(36, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "Reserved"));
            // 1.2; the library still takes the 1.1 size, 40.
            Assert.AreEqual(40, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "StdoutFdPlusOne"));
            Assert.AreEqual(44, (int)Marshal.OffsetOf(typeof(NativeSessionOptions), "StderrFdPlusOne"));
            unsafe
            {
                // What the P/Invokes pass (blittable, so the managed size is the native one).
                Assert.AreEqual(104, sizeof(NativeRecord));
                Assert.AreEqual((int)Native.ReaderOptionsSize, sizeof(NativeReaderOptions));
                Assert.AreEqual((int)Native.ClientOptionsSize, sizeof(NativeClientOptions));
                Assert.AreEqual((int)Native.ExecuteOptionsSize, sizeof(NativeExecuteOptions));
                Assert.AreEqual((int)Native.SessionOptionsSize, sizeof(NativeSessionOptions));
            }
        }

        [Test]
        public void LibraryIsAbiVersion1()
        {
            Assert.AreEqual(1u, Library.AbiVersion);
            StringAssert.IsMatch(@"^\d+\.\d+\.\d+$", Library.Version);
        }

        [Test]
        public void ALibraryOfAnotherAbiVersionIsRefused()
        {
            // In a child process: this one has loaded the real library already.
            string fake = Environment.GetEnvironmentVariable("SHMREPL_FAKE_ABI_LIBRARY");
            if (string.IsNullOrEmpty(fake)) Assert.Fail("set SHMREPL_FAKE_ABI_LIBRARY to the fake-abi libshmrepl.so (the CMake build makes it)");
            var psi = new ProcessStartInfo(Process.GetCurrentProcess().MainModule.FileName,
                                           "\"" + Path.Combine(TestContext.CurrentContext.TestDirectory, "BenchReader.exe") + "\" some-ring")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            psi.EnvironmentVariables["SHMREPL_LIBRARY"] = fake;
            psi.EnvironmentVariables["LD_LIBRARY_PATH"] = Path.GetDirectoryName(fake);
            using (var p = Process.Start(psi))
            {
                string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.AreEqual(1, p.ExitCode, stdout + stderr);
                StringAssert.Contains("libshmrepl has ABI version 2, this binding needs 1", stderr);
                Assert.AreEqual("", stdout);
            }
        }

        [Test]
        public void UnknownCodesKeepTheirNumber()
        {
            var e = ShmreplException.Create((Status)(-1234), "detail");
            Assert.AreEqual(-1234, (int)e.Status);
            StringAssert.Contains("-1234", e.Message);
            StringAssert.Contains("detail", e.Message);
            Assert.AreEqual("77", ((FinishStatus)77).ToString());
            Assert.AreEqual("99", ((RecordKind)99).ToString());
            Assert.IsInstanceOf<NotFoundException>(ShmreplException.Create(Status.NotFound, ""));
            Assert.IsInstanceOf<ShmreplTimeoutException>(ShmreplException.Create(Status.Again, ""));
            Assert.AreEqual(-18, (int)Status.SessionDied);
            Assert.IsInstanceOf<SessionDiedException>(ShmreplException.Create((Status)(-18), ""));
            Assert.AreEqual(4, (int)FinishStatus.Aborted);
            Assert.AreEqual(5, (int)FinishStatus.Timeout);
            Assert.AreEqual(6, (int)FinishStatus.MemoryLimit);
        }
    }

    [TestFixture]
    public class EngineTests
    {
        TestEngine engine;
        Session session;

        [TestFixtureSetUp]
        public void Start()
        {
            engine = new TestEngine();
            session = engine.Client.OpenSession();
        }

        [TestFixtureTearDown]
        public void Stop()
        {
            if (engine == null) return;
            session.Dispose();
            string socket = engine.SocketPath;
            engine.Dispose();
            // shmrepl_engine_shutdown returns when the connection closed, which the engine
            // may do just before it unlinks the socket: allow it a moment.
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (File.Exists(socket) && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.IsFalse(File.Exists(socket), "the engine removes its socket at shutdown");
        }

        List<Copied> Run(string code, out ulong executionId, string clientId = null, bool script = false, int batch = 64,
                         ulong ringCapacity = 0, Session inSession = null)
        {
            var s = inSession ?? session;
            using (var ex = s.Execute(new ExecuteOptions { Code = code, ClientExecutionId = clientId, Script = script, RingCapacity = ringCapacity }))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                executionId = ex.Id;
                Assert.AreEqual(ex.Id, reader.ExecutionId);
                return Read.All(reader, batch);
            }
        }

        // ---- conformance vectors ----

        static string VectorsPath()
        {
            string p = Environment.GetEnvironmentVariable("SHMREPL_VECTORS");
            if (!string.IsNullOrEmpty(p)) return p;
            // From the assembly's folder up to the checkout: tests/vectors/executions.json.
            for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d != null; d = d.Parent)
            {
                string f = Path.Combine(d.FullName, "tests", "vectors", "executions.json");
                if (File.Exists(f)) return f;
            }
            Assert.Fail("tests/vectors/executions.json not found; set SHMREPL_VECTORS");
            return null;
        }

        static string KindName(RecordKind k)
        {
            switch (k)
            {
                case RecordKind.Started: return "STARTED";
                case RecordKind.Output: return "OUTPUT";
                case RecordKind.Result: return "RESULT";
                case RecordKind.Error: return "ERROR";
                case RecordKind.InputRequest: return "INPUT_REQUEST";
                case RecordKind.Finished: return "FINISHED";
                default: return "UNKNOWN";
            }
        }

        [Test]
        public void ConformanceVectors()
        {
            string path = VectorsPath();
            var root = (Dictionary<string, object>)MiniJson.Parse(File.ReadAllText(path, Encoding.UTF8));
            var vectors = (List<object>)root["executions"];
            Assert.Greater(vectors.Count, 0, path + " holds no executions");
            var names = new HashSet<string>();
            foreach (Dictionary<string, object> v in vectors)
            {
                string name = (string)v["name"];
                Assert.IsTrue(names.Add(name), "duplicate vector " + name);
                string clientId = (string)v["client_execution_id"];
                ulong capacity = v.ContainsKey("ring_capacity") ? (ulong)(double)v["ring_capacity"] : 0;
                ulong id;
                List<Copied> recs;
                using (var fresh = engine.Client.OpenSession())  // each vector in a fresh session
                    recs = Run((string)v["code"], out id, clientId, (bool)v["script"], 64, capacity, fresh);
                string where = "vector " + name + ": ";

                var kinds = recs.Select(r => KindName(r.Kind)).ToArray();
                var want = ((List<object>)v["kinds"]).Cast<string>().ToArray();
                Assert.AreEqual(want, kinds, where + "kinds");
                CollectionAssert.AreEqual(Encoding.UTF8.GetBytes((string)v["stdout"]),
                                          Read.StreamBytes(recs, StreamKind.Stdout), where + "stdout");
                CollectionAssert.AreEqual(Encoding.UTF8.GetBytes((string)v["stderr"]),
                                          Read.StreamBytes(recs, StreamKind.Stderr), where + "stderr");
                for (int i = 0; i < recs.Count; i++)
                {
                    Assert.AreEqual((ulong)i, recs[i].Seq, where + "seq gap-free from 0");
                    Assert.AreEqual(id, recs[i].ExecutionId, where + "execution id of record " + i);
                    Assert.IsTrue(recs[i].InsideMapping, where + "views inside the mapping");
                }
                Assert.AreEqual(RecordKind.Started, recs[0].Kind, where + "first record");
                CollectionAssert.AreEqual(Encoding.UTF8.GetBytes(clientId), recs[0].Data, where + "STARTED data");
                var fin = recs[recs.Count - 1];
                Assert.AreEqual(RecordKind.Finished, fin.Kind, where + "last record");
                Assert.AreEqual((string)v["finish_status"], fin.FinishStatus.ToString().ToUpperInvariant(), where + "finish status");
                Assert.AreEqual((long)(double)v["exit_code"], fin.ExitCode, where + "exit code");
                Assert.AreEqual(v.ContainsKey("signal") ? (int)(double)v["signal"] : 0, fin.Signal, where + "signal");
            }
        }

        // ---- records, zero copy ----

        [Test]
        public void ViewsLieInsideTheMappingAndTheMappingIsTheRing()
        {
            using (var ex = session.Execute("for i in range(200):\n    print('line', i, 'x' * 50)\n", "zc"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var m = reader.Mapping();
                Assert.AreNotEqual(IntPtr.Zero, m.Base);
                Assert.Greater(m.Length, 0ul);
                int outputs = 0;
                while (true)
                {
                    Batch b = reader.NextBatch(16, TimeSpan.FromSeconds(20));
                    try
                    {
                        if (b.IsEnd) break;
                        foreach (Record r in b)
                        {
                            Assert.IsTrue(m.Contains(r.Raw), "raw inside");
                            if (r.DataLength > 0) Assert.IsTrue(m.Contains(r.Data), "data inside");
                            if (r.Kind == RecordKind.Output) outputs++;
                        }
                    }
                    finally { b.Dispose(); }
                }
                Assert.Greater(outputs, 0);
                Assert.AreEqual(0, reader.Held);

                // /proc/self/maps: the range is the ring's shared mapping (its memfd), end
                // to end: the header pages read-write, the data area read-only.
                ulong lo = (ulong)m.Base.ToInt64(), hi = lo + m.Length, at = lo;
                int entries = 0;
                foreach (var line in File.ReadAllLines("/proc/self/maps"))
                {
                    var parts = line.Split(new[] { ' ' }, 6, StringSplitOptions.RemoveEmptyEntries);
                    var range = parts[0].Split('-');
                    ulong a = Convert.ToUInt64(range[0], 16), z = Convert.ToUInt64(range[1], 16);
                    if (z <= lo || a >= hi) continue;
                    Assert.LessOrEqual(a, at, "gap in the mapping: " + line);
                    at = z;
                    entries++;
                    StringAssert.Contains("/memfd:", line);
                    // The label is the name it was created with (a ring a session
                    // reuses keeps it): the same random part.
                    StringAssert.EndsWith(ex.RingName.Substring(ex.RingName.LastIndexOf('.')) + " (deleted)", line);
                    StringAssert.EndsWith("s", parts[1]);
                    StringAssert.StartsWith(entries == 1 ? "rw" : "r-", parts[1]);
                }
                Assert.GreaterOrEqual(at, hi, "no mapping in /proc/self/maps covers the reader's range");
            }
        }

        [Test]
        public void NextReturnsRecordsOneByOne()
        {
            using (var ex = session.Execute("print('a')\n1 + 1\n", "one"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var kinds = new List<RecordKind>();
                var texts = new List<string>();
                Record r;
                while (reader.Next(TimeSpan.FromSeconds(20), out r))
                {
                    kinds.Add(r.Kind);
                    texts.Add(r.Text);
                    Assert.AreEqual(1, reader.Held);
                    reader.Release(1);
                }
                CollectionAssert.AreEqual(new[] { RecordKind.Started, RecordKind.Output, RecordKind.Result, RecordKind.Finished }, kinds);
                Assert.AreEqual("one", texts[0]);
                Assert.AreEqual("a\n", texts[1]);
                Assert.AreEqual("2", texts[2]);
                // After the end, still the end.
                Assert.IsFalse(reader.Next(TimeSpan.Zero, out r));
            }
        }

        [Test]
        public void ReleasedRecordsAndRecordsOfADisposedReaderThrow()
        {
            using (var ex = session.Execute("print('x')\n"))
            {
                engine.Track(ex.RingName);
                var reader = ex.OpenReader();
                Record r;
                Assert.IsTrue(reader.Next(TimeSpan.FromSeconds(20), out r));
                Assert.AreEqual(RecordKind.Started, r.Kind);
                reader.Release(1);
                bool threw = false;
                try { var k = r.Kind; } catch (InvalidOperationException) { threw = true; }
                Assert.IsTrue(threw, "a released record throws");

                Assert.IsTrue(reader.Next(TimeSpan.FromSeconds(20), out r));
                reader.Dispose();
                threw = false;
                try { var d = r.Data; } catch (ObjectDisposedException) { threw = true; }
                Assert.IsTrue(threw, "a record of a disposed reader throws");

                Assert.Throws<ObjectDisposedException>(() => { Record x; reader.Next(TimeSpan.Zero, out x); });
                Assert.Throws<ObjectDisposedException>(() => reader.NextBatch(8, TimeSpan.Zero));
                Assert.Throws<ObjectDisposedException>(() => reader.Release(1));
                Assert.Throws<ObjectDisposedException>(() => reader.Mapping());
                Assert.Throws<ObjectDisposedException>(() => { var id = reader.ExecutionId; });
                reader.Dispose();  // twice is fine
                Assert.Throws<ArgumentOutOfRangeException>(() => { using (var r2 = ex.OpenReader()) r2.Release(1); });
            }
        }

        [Test]
        public void HeldBatchesStayValidUntilReleased()
        {
            using (var ex = session.Execute("for i in range(50):\n    print(i)\n", "held"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                // Wait until everything is written, then take it in small batches without
                // releasing: each batch must keep its own records.
                Batch first = reader.NextBatch(4, TimeSpan.FromSeconds(20));
                Batch second = reader.NextBatch(4, TimeSpan.FromSeconds(20));
                Assert.AreEqual(0ul, first.Get(0).Seq);
                ulong secondStart = first.Get(first.Count - 1).Seq + 1;
                Assert.AreEqual(secondStart, second.Get(0).Seq);
                Assert.AreEqual(first.Count + second.Count, (int)reader.Held);
                second.Dispose();  // releases the first batch too (records go back in order)
                Assert.AreEqual(0, reader.Held);
                first.Dispose();   // nothing left: no-op
                var rest = Read.All(reader);
                Assert.AreEqual(RecordKind.Finished, rest[rest.Count - 1].Kind);
            }
        }

        [Test]
        public void ErrorDetails()
        {
            ulong id;
            var recs = Run("def f():\n    raise ValueError('boom')\nf()\n", out id);
            var err = recs.Single(r => r.Kind == RecordKind.Error);
            Assert.AreEqual("ValueError", err.Error.Name);
            Assert.AreEqual("boom", err.Error.Message);
            Assert.Greater(err.Error.Traceback.Count, 0);
            Assert.IsTrue(err.Error.Traceback.Any(l => l.Contains("in f")), string.Join("|", err.Error.Traceback));
            var fin = recs.Last();
            Assert.AreEqual(FinishStatus.Error, fin.FinishStatus);

            // Zero-copy views of the same parts.
            using (var ex = session.Execute("raise KeyError('k')\n"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var m = reader.Mapping();
                Record r;
                bool found = false;
                while (reader.Next(TimeSpan.FromSeconds(20), out r))
                {
                    if (r.Kind == RecordKind.Error)
                    {
                        found = true;
                        Assert.AreEqual("KeyError", Encoding.UTF8.GetString(r.ErrorName.ToArray()));
                        Assert.IsTrue(m.Contains(r.ErrorName));
                        Assert.Greater(r.TracebackLineCount, 0);
                        Assert.IsTrue(m.Contains(r.TracebackLine(0)));
                    }
                    else
                    {
                        bool threw = false;
                        try { var n = r.TracebackLineCount; }
                        catch (ShmreplException e) { threw = e.Status == Status.Invalid && e.Detail.Length > 0; }
                        Assert.IsTrue(threw, "error parts of a " + r.Kind + " record");
                    }
                    reader.Release(1);
                }
                Assert.IsTrue(found);
            }
        }

        [Test]
        public void ScriptArgvAndExitCode()
        {
            ulong id;
            using (var ex = session.Execute(new ExecuteOptions
            {
                Code = "import sys\nprint(sys.argv[1:])\nsys.stderr.write('é\\n')\nsys.exit(3)\n",
                Script = true,
                Argv = new[] { "prog", "α", "b c" },
                Filename = "prog.py",
            }))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                id = ex.Id;
                var recs = Read.All(reader);
                Assert.AreEqual("['α', 'b c']\n", Read.Stream(recs, StreamKind.Stdout));
                Assert.AreEqual("é\n", Read.Stream(recs, StreamKind.Stderr));
                Assert.AreEqual(FinishStatus.Exited, recs.Last().FinishStatus);
                Assert.AreEqual(3, recs.Last().ExitCode);
                Assert.IsTrue(recs.All(r => r.ExecutionId == id));
            }
        }

        [Test]
        public void ReaderByRingName()
        {
            using (var ex = session.Execute("print('by name')\n"))
            {
                engine.Track(ex.RingName);
                using (var reader = Reader.Open(ex.RingName, ReaderStart.Oldest))
                {
                    var recs = Read.All(reader);
                    Assert.AreEqual("by name\n", Read.Stream(recs, StreamKind.Stdout));
                    Assert.AreEqual(ex.Id, reader.ExecutionId);
                }
            }
        }

        [Test]
        public void BackgroundRing()
        {
            using (var s = engine.Client.OpenSession())
            {
                string ring = s.BackgroundRing;
                Assert.IsNotNull(ring, "the engine gives each session a background ring");
                engine.Track(ring);
                using (var bg = Reader.Open(ring, ReaderStart.Newest))
                {
                    ulong id;
                    using (var ex = s.Execute("import threading, time\n" +
                                              "def late():\n    time.sleep(0.3)\n    print('late')\n" +
                                              "threading.Thread(target=late).start()\n"))
                    using (var reader = ex.OpenReader())
                    {
                        engine.Track(ex.RingName);
                        id = ex.Id;
                        Read.All(reader);
                    }
                    var deadline = DateTime.UtcNow.AddSeconds(20);
                    var text = new StringBuilder();
                    while (text.ToString() != "late\n" && DateTime.UtcNow < deadline)
                    {
                        Batch b = bg.NextBatch(16, TimeSpan.FromSeconds(1));
                        try
                        {
                            foreach (Record r in b)
                                if (r.Kind == RecordKind.Output)
                                {
                                    Assert.AreEqual(id, r.ExecutionId, "a background record carries the id of the execution that started the thread");
                                    text.Append(r.Text);
                                }
                        }
                        catch (ShmreplTimeoutException) { }
                        finally { b.Dispose(); }
                    }
                    Assert.AreEqual("late\n", text.ToString());
                }
                s.Close();
                Assert.Throws<NotFoundException>(() => engine.Client.CloseSession(s.Id));
            }
        }

        // ---- errors ----

        [Test]
        public void UnknownRingIsNotFoundAndABadNameIsInvalid()
        {
            var e = Assert.Throws<NotFoundException>(() => Reader.Open("shmrepl-cs-test-no-such-ring-" + Process.GetCurrentProcess().Id));
            Assert.AreEqual(Status.NotFound, e.Status);
            var bad = Assert.Throws<ShmreplException>(() => Reader.Open("bad/name"));
            Assert.AreEqual(Status.Invalid, bad.Status);
            Assert.IsNotEmpty(bad.Detail, "the detail of shmrepl_last_error()");
            StringAssert.Contains(bad.Detail, bad.Message);
        }

        [Test]
        public void TimeoutAndAgain()
        {
            using (var ex = session.Execute("import time\ntime.sleep(30)\n"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                Record r;
                Assert.IsTrue(reader.Next(TimeSpan.FromSeconds(20), out r));
                Assert.AreEqual(RecordKind.Started, r.Kind);
                reader.Release(1);
                var sw = Stopwatch.StartNew();
                var t = Assert.Throws<ShmreplTimeoutException>(() => { Record x; reader.Next(TimeSpan.FromMilliseconds(200), out x); });
                Assert.AreEqual(Status.Timeout, t.Status);
                Assert.GreaterOrEqual(sw.ElapsedMilliseconds, 150);
                var a = Assert.Throws<ShmreplTimeoutException>(() => reader.NextBatch(8, TimeSpan.Zero));
                Assert.AreEqual(Status.Again, a.Status);
                Assert.AreEqual(0, reader.Held);
                ex.Cancel();
                var recs = Read.All(reader);
                Assert.AreEqual(FinishStatus.Cancelled, recs.Last().FinishStatus);
            }
        }

        [Test]
        public void CancelFromAnotherThread()
        {
            using (var ex = session.Execute("import time\nprint('go')\nwhile True:\n    time.sleep(0.01)\n"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var recs = new List<Copied>();
                var m = reader.Mapping();
                Record r;
                while (reader.Next(TimeSpan.FromSeconds(20), out r))
                {
                    recs.Add(Read.Copy(r, m));
                    reader.Release(1);
                    if (recs.Last().Kind == RecordKind.Output)
                    {
                        var t = new Thread(ex.Cancel);
                        t.Start();
                        t.Join();
                    }
                }
                var fin = recs.Last();
                Assert.AreEqual(RecordKind.Finished, fin.Kind);
                Assert.AreEqual(FinishStatus.Cancelled, fin.FinishStatus);
                Assert.IsTrue(recs.Any(x => x.Kind == RecordKind.Error && x.Error.Name == "KeyboardInterrupt"));
                ex.Cancel();  // after the end: fine
            }
        }

        [Test]
        public void NoEngineWithoutAutostartIsConnect()
        {
            var o = engine.Options(false);
            o.SocketPath = Path.Combine(engine.Folder, "nobody.sock");
            var e = Assert.Throws<ConnectException>(() => Client.Connect(o));
            Assert.AreEqual(Status.Connect, e.Status);
            Assert.IsFalse(File.Exists(o.SocketPath));
        }

        [Test]
        public void ClosedHandlesThrow()
        {
            var ex = session.Execute("pass\n");
            engine.Track(ex.RingName);
            ex.Dispose();
            Assert.Throws<ObjectDisposedException>(() => ex.OpenReader());
            Assert.Throws<ObjectDisposedException>(() => ex.Cancel());
        }

        [Test]
        public void ExecuteInAnUnknownSessionIsNotFound()
        {
            // shmrepl.h: shmrepl_execute gives E_NOT_FOUND for an unknown session.
            var e = Assert.Throws<NotFoundException>(() => engine.Client.Execute(new ExecuteOptions { SessionId = 987654321, Code = "pass" }));
            Assert.AreEqual(Status.NotFound, e.Status);
        }
    }

    [TestFixture]
    public class DeadEngineTests
    {
        [Test]
        public void KilledEngineGivesProducerDiedAndEngineDied()
        {
            var engine = new TestEngine();
            Reader peek = null, reader = null;
            Execution ex = null;
            try
            {
                var s = engine.Client.OpenSession();
                engine.Track(s.BackgroundRing);
                ex = s.Execute("import time\nprint('one')\nprint('two')\ntime.sleep(60)\n");
                engine.Track(ex.RingName);
                reader = ex.OpenReader();  // attached before anything is released: gets all
                peek = ex.OpenReader();
                // Wait until both lines are in the ring.
                int outputs = 0;
                Record r;
                while (outputs < 2 && peek.Next(TimeSpan.FromSeconds(20), out r))
                {
                    if (r.Kind == RecordKind.Output) outputs++;
                    peek.Release(1);
                }
                Assert.AreEqual(2, outputs);

                int pid = engine.Client.EnginePid;
                Assert.Greater(pid, 1);
                Process.GetProcessById(pid).Kill();
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (Directory.Exists("/proc/" + pid) && DateTime.UtcNow < deadline) Thread.Sleep(10);

                var got = new List<Copied>();
                var m = reader.Mapping();
                var sw = Stopwatch.StartNew();
                var died = Assert.Throws<ProducerDiedException>(() =>
                {
                    while (true)
                    {
                        Batch b = reader.NextBatch(64, TimeSpan.FromSeconds(10));
                        try { foreach (Record x in b) got.Add(Read.Copy(x, m)); }
                        finally { b.Dispose(); }
                        if (b.IsEnd) break;
                    }
                });
                Assert.AreEqual(Status.ProducerDied, died.Status);
                Assert.Less(sw.Elapsed, TimeSpan.FromSeconds(5));
                CollectionAssert.AreEqual(new[] { RecordKind.Started, RecordKind.Output, RecordKind.Output }, got.Select(x => x.Kind).ToArray());
                Assert.AreEqual("one\ntwo\n", Read.Stream(got, StreamKind.Stdout));

                // Calls on the client connection: E_ENGINE_DIED. Calls that go to the
                // session (its worker died with the engine): E_SESSION_DIED.
                var e1 = Assert.Throws<EngineDiedException>(() => engine.Client.OpenSession());
                Assert.AreEqual(Status.EngineDied, e1.Status);
                Assert.Throws<EngineDiedException>(() => engine.Client.OpenSession(new SessionOptions { WorkingDir = "/" }));
                var e2 = Assert.Throws<SessionDiedException>(() => ex.Cancel());
                Assert.AreEqual(Status.SessionDied, e2.Status);
                var e3 = Assert.Throws<SessionDiedException>(() => s.Execute("pass\n"));
                Assert.AreEqual(Status.SessionDied, e3.Status);
                Assert.Throws<EngineDiedException>(() => engine.Client.ShutdownEngine());
            }
            finally
            {
                if (peek != null) peek.Dispose();
                if (reader != null) reader.Dispose();
                if (ex != null) ex.Dispose();
                engine.Dispose(shutdown: false);  // also removes the rings the dead engine left
            }
        }
    }
}
