// The engine's limits (Status.Limit, libshmrepl 1.2) and the client's request timeout
// (ClientOptions.RequestTimeout, 1.2).
using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using NUnit.Framework;

namespace Shmrepl.Tests
{
    [TestFixture]
    public class ControlLimitTests
    {
        [Test]
        public void ASessionHogGetsLimit()
        {
            // The auto-started engine takes its limits from our environment.
            Environment.SetEnvironmentVariable("SHMREPL_MAX_CLIENT_SESSIONS", "2");
            TestEngine engine;
            try
            {
                engine = new TestEngine();
            }
            finally
            {
                Environment.SetEnvironmentVariable("SHMREPL_MAX_CLIENT_SESSIONS", null);
            }
            using (engine)
            {
                var first = engine.Client.OpenSession();
                var second = engine.Client.OpenSession();
                var e = Assert.Throws<LimitException>(() => engine.Client.OpenSession());
                Assert.AreEqual(Status.Limit, e.Status);
                Assert.AreEqual(-19, (int)Status.Limit);
                StringAssert.Contains("--max-client-sessions", e.Detail);
                first.Dispose();
                engine.Client.OpenSession().Dispose();  // room again
                second.Dispose();
            }
        }

        [Test]
        public void ARequestTimeoutEndsAHungRequest()
        {
            string silent = Environment.GetEnvironmentVariable("SHMREPL_TEST_SILENT_ENGINE");
            if (string.IsNullOrEmpty(silent)) Assert.Ignore("needs $SHMREPL_TEST_SILENT_ENGINE");
            string folder = Path.Combine(Path.GetTempPath(), "shmrepl-cs-" + Guid.NewGuid().ToString("N").Substring(0, 12));
            Directory.CreateDirectory(folder);
            string sock = Path.Combine(folder, "silent.sock");
            var peer = Process.Start(new ProcessStartInfo(silent, sock) { UseShellExecute = false });
            try
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
                while (!File.Exists(sock) && DateTime.UtcNow < deadline) Thread.Sleep(10);
                using (var c = Client.Connect(new ClientOptions
                {
                    SocketPath = sock,
                    Autostart = false,
                    RequestTimeout = TimeSpan.FromMilliseconds(300),
                }))
                {
                    var clock = Stopwatch.StartNew();
                    var e = Assert.Throws<ShmreplTimeoutException>(() => c.OpenSession());
                    clock.Stop();
                    Assert.AreEqual(Status.Timeout, e.Status);
                    Assert.GreaterOrEqual(clock.Elapsed, TimeSpan.FromMilliseconds(250));
                    Assert.Less(clock.Elapsed, TimeSpan.FromSeconds(5));
                    var e2 = Assert.Throws<ShmreplException>(() => c.OpenSession());
                    Assert.AreEqual(Status.State, e2.Status);
                }
            }
            finally
            {
                peer.Kill();
                peer.WaitForExit();
                Directory.Delete(folder, true);
            }
        }
    }
}
