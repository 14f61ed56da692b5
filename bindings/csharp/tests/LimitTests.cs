// Per-execution limits of libshmrepl 1.1: ExecuteOptions.Timeout (FINISHED Timeout) and
// ExecuteOptions.MemoryLimit (FINISHED MemoryLimit).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using NUnit.Framework;

namespace Shmrepl.Tests
{
    [TestFixture]
    public class LimitTests
    {
        TestEngine engine;

        [TestFixtureSetUp]
        public void Start()
        {
            engine = new TestEngine();
        }

        [TestFixtureTearDown]
        public void Stop()
        {
            if (engine != null) engine.Dispose();
        }

        List<Copied> Run(Session s, ExecuteOptions options)
        {
            using (var ex = s.Execute(options))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var recs = Read.All(reader);
                Assert.IsTrue(recs.All(r => r.ExecutionId == ex.Id && r.InsideMapping));
                return recs;
            }
        }

        List<Copied> Run(Session s, string code)
        {
            return Run(s, new ExecuteOptions { Code = code });
        }

        [Test]
        public void ATimeoutEndsTheExecutionWithTimeoutAndTheSessionGoesOn()
        {
            using (var s = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                Run(s, "y = 41\n");
                var clock = Stopwatch.StartNew();
                var recs = Run(s, new ExecuteOptions
                {
                    Code = "import time; print('start', flush=True); time.sleep(60)\n",
                    Timeout = TimeSpan.FromMilliseconds(300),
                });
                clock.Stop();
                Assert.Less(clock.Elapsed, TimeSpan.FromSeconds(3), "ends within 3 s");
                Assert.GreaterOrEqual(clock.Elapsed, TimeSpan.FromMilliseconds(250), "not before its timeout");
                Assert.AreEqual("start\n", Read.Stream(recs, StreamKind.Stdout));
                var fin = recs.Last();
                Assert.AreEqual(RecordKind.Finished, fin.Kind);
                Assert.AreEqual(FinishStatus.Timeout, fin.FinishStatus, Read.Stream(recs, StreamKind.Stderr));
                Assert.AreEqual("Timeout", fin.FinishStatus.ToString());
                // The session (its worker and its globals) still works.
                Assert.AreEqual("42\n", Read.Stream(Run(s, "print(y + 1)\n"), StreamKind.Stdout));
                // A timeout that is not reached changes nothing.
                var ok = Run(s, new ExecuteOptions { Code = "print('fast')\n", Timeout = TimeSpan.FromSeconds(30) });
                Assert.AreEqual(FinishStatus.Ok, ok.Last().FinishStatus);
                Assert.AreEqual("fast\n", Read.Stream(ok, StreamKind.Stdout));
            }
        }

        [Test]
        public void AMemoryLimitEndsTheExecutionWithMemoryLimit()
        {
            using (var s = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                var recs = Run(s, new ExecuteOptions { Code = "x = bytearray(512 << 20)\n", MemoryLimit = 64UL << 20 });
                var fin = recs.Last();
                Assert.AreEqual(RecordKind.Finished, fin.Kind);
                Assert.AreEqual(FinishStatus.MemoryLimit, fin.FinishStatus, Read.Stream(recs, StreamKind.Stderr));
                var err = recs.FirstOrDefault(r => r.Kind == RecordKind.Error);
                if (err != null) Assert.AreEqual("MemoryError", err.Error.Name);
                // The limit held only during that execution.
                var after = Run(s, "x = bytearray(128 << 20)\nprint(len(x) >> 20)\ndel x\n");
                Assert.AreEqual(FinishStatus.Ok, after.Last().FinishStatus, Read.Stream(after, StreamKind.Stderr));
                Assert.AreEqual("128\n", Read.Stream(after, StreamKind.Stdout));
            }
        }

        [Test]
        public void BadTimeoutsAreRefusedBeforeTheCall()
        {
            using (var s = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                Assert.Throws<ArgumentOutOfRangeException>(() => s.Execute(new ExecuteOptions { Code = "pass\n", Timeout = TimeSpan.Zero }));
                Assert.Throws<ArgumentOutOfRangeException>(() => s.Execute(new ExecuteOptions { Code = "pass\n", Timeout = TimeSpan.FromSeconds(-2) }));
                // Infinite: no limit.
                var recs = Run(s, new ExecuteOptions { Code = "print(1)\n", Timeout = System.Threading.Timeout.InfiniteTimeSpan });
                Assert.AreEqual(FinishStatus.Ok, recs.Last().FinishStatus);
            }
        }
    }
}
