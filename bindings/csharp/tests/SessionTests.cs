// Sessions of libshmrepl 1.1: shmrepl_session_open_ex (working folder, environment, stdin)
// and a session whose worker process died (E_SESSION_DIED, FINISHED Aborted + signal).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;

namespace Shmrepl.Tests
{
    static class Posix
    {
        const int O_CLOEXEC = 0x80000;

        [DllImport("libc.so.6", SetLastError = true)] static extern int pipe2(int[] fds, int flags);
        [DllImport("libc.so.6", SetLastError = true)] static extern IntPtr write(int fd, byte[] buf, UIntPtr n);
        [DllImport("libc.so.6", SetLastError = true)] public static extern int close(int fd);
        [DllImport("libc.so.6", SetLastError = true)] static extern int openpty(out int master, out int slave, IntPtr name, IntPtr termp, ushort[] winp);
        [DllImport("libc.so.6", SetLastError = true)] public static extern int open(string path, int flags);

        // A pseudo-terminal of rows x cols: [0] master, [1] slave.
        public static int[] OpenPty(ushort rows, ushort cols)
        {
            int m, s;
            if (openpty(out m, out s, IntPtr.Zero, IntPtr.Zero, new ushort[] { rows, cols, 0, 0 }) != 0)
                Assert.Fail("openpty: errno " + Marshal.GetLastWin32Error());
            return new[] { m, s };
        }

        // A pipe (close-on-exec, so no child process keeps the write end open):
        // [0] read end, [1] write end.
        public static int[] Pipe()
        {
            var fds = new int[2];
            if (pipe2(fds, O_CLOEXEC) != 0) Assert.Fail("pipe2: errno " + Marshal.GetLastWin32Error());
            return fds;
        }

        public static void WriteAll(int fd, byte[] data)
        {
            // Small enough for the pipe buffer: one write.
            long n = (long)write(fd, data, (UIntPtr)(ulong)data.Length);
            Assert.AreEqual(data.Length, n, "write to the pipe");
        }
    }

    [TestFixture]
    public class SessionTests
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

        List<Copied> Run(Session s, string code)
        {
            using (var ex = s.Execute(code))
            using (var reader = ex.OpenReader())
            {
                engine.Track(ex.RingName);
                var recs = Read.All(reader);
                Assert.IsTrue(recs.All(r => r.ExecutionId == ex.Id && r.InsideMapping));
                return recs;
            }
        }

        const string ShowCode =
            "import os, sys\n" +
            "print(os.getcwd())\n" +
            "print(os.environ['X'])\n" +
            "print(sorted(os.environ))\n" +
            "print(repr(sys.stdin.read()))\n";

        [Test]
        public void WorkingDirEnvironmentAndStdinFromAPipe()
        {
            string dir = Path.Combine(engine.Folder, "work é");
            Directory.CreateDirectory(dir);
            var env = new Dictionary<string, string> { { "X", "x = é" }, { "OTHER", "" } };
            byte[] input = Encoding.UTF8.GetBytes("line 1\nline 2 ü\n");
            int[] p = Posix.Pipe();
            Session s;
            try
            {
                Posix.WriteAll(p[1], input);
                Assert.AreEqual(0, Posix.close(p[1]));
                p[1] = -1;  // the worker's copy of the read end then sees EOF after the data
                s = engine.Client.OpenSession(new SessionOptions { WorkingDir = dir, Env = env, StdinFd = p[0] });
            }
            finally
            {
                if (p[1] >= 0) Posix.close(p[1]);
                Posix.close(p[0]);  // the caller may close its descriptor after OpenSession
            }
            using (s)
            {
                engine.Track(s.BackgroundRing);
                var recs = Run(s, ShowCode);
                Assert.AreEqual(FinishStatus.Ok, recs.Last().FinishStatus, Read.Stream(recs, StreamKind.Stderr));
                Assert.AreEqual(dir + "\n" +
                                "x = é\n" +
                                "['OTHER', 'X']\n" +  // the whole environment, nothing else
                                "'line 1\\nline 2 ü\\n'\n",
                                Read.Stream(recs, StreamKind.Stdout));
                Assert.AreEqual("", Read.Stream(recs, StreamKind.Stderr));

                // The same worker: the folder and environment stay, stdin is at its end.
                recs = Run(s, "import os, sys\nprint(os.getcwd() == " + PyStr(dir) + ", os.environ['X'], repr(sys.stdin.read()))\n");
                Assert.AreEqual("True x = é ''\n", Read.Stream(recs, StreamKind.Stdout));
            }
        }

        [Test]
        public void StdinFromAFileOpenedForReading()
        {
            string file = Path.Combine(engine.Folder, "input.txt");
            File.WriteAllText(file, "from a file\n", new UTF8Encoding(false));
            Session s;
            using (var fs = new FileStream(file, FileMode.Open, FileAccess.Read))
                s = engine.Client.OpenSession(new SessionOptions { StdinFd = (int)fs.SafeFileHandle.DangerousGetHandle() });
            using (s)
            {
                engine.Track(s.BackgroundRing);
                var recs = Run(s, "import sys\nprint(repr(sys.stdin.read()))\n");
                Assert.AreEqual("'from a file\\n'\n", Read.Stream(recs, StreamKind.Stdout));
            }
        }

        [Test]
        public void DefaultsAreTheEnginesFolderAndEnvironmentAndNoStdin()
        {
            string dir = Path.Combine(engine.Folder, "elsewhere");
            Directory.CreateDirectory(dir);
            using (var s = engine.Client.OpenSession(new SessionOptions()))
            using (var plain = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                engine.Track(plain.BackgroundRing);
                const string code = "import os, sys\nprint(os.getcwd(), len(os.environ), repr(sys.stdin.read()))\n";
                string a = Read.Stream(Run(s, code), StreamKind.Stdout);
                string b = Read.Stream(Run(plain, code), StreamKind.Stdout);
                Assert.AreEqual(b, a, "all-default options are shmrepl_session_open");
                StringAssert.EndsWith(" ''\n", a, "stdin is /dev/null");
                StringAssert.DoesNotStartWith(dir + " ", a);
            }
            // An empty dictionary is an empty environment (env != NULL, envc 0), not the engine's.
            using (var s = engine.Client.OpenSession(new SessionOptions { Env = new Dictionary<string, string>(), WorkingDir = dir }))
            {
                engine.Track(s.BackgroundRing);
                Assert.AreEqual(dir + " {}\n", Read.Stream(Run(s, "import os\nprint(os.getcwd(), dict(os.environ))\n"), StreamKind.Stdout));
            }
        }

        [Test]
        public void BadSessionOptions()
        {
            var nf = Assert.Throws<NotFoundException>(() => engine.Client.OpenSession(new SessionOptions { WorkingDir = Path.Combine(engine.Folder, "no-such-folder") }));
            Assert.AreEqual(Status.NotFound, nf.Status);
            StringAssert.Contains("no-such-folder", nf.Detail);
            // No such descriptor: the library checks it before sending it.
            var inv = Assert.Throws<ShmreplException>(() => engine.Client.OpenSession(new SessionOptions { StdinFd = int.MaxValue - 1 }));
            Assert.AreEqual(Status.Invalid, inv.Status);
            Assert.IsNotEmpty(inv.Detail);
            // Checked by the binding: a name with '=', a null value, a negative descriptor.
            Assert.Throws<ArgumentException>(() => engine.Client.OpenSession(new SessionOptions { Env = new Dictionary<string, string> { { "A=B", "c" } } }));
            Assert.Throws<ArgumentException>(() => engine.Client.OpenSession(new SessionOptions { Env = new Dictionary<string, string> { { "A", null } } }));
            Assert.Throws<ArgumentOutOfRangeException>(() => engine.Client.OpenSession(new SessionOptions { StdinFd = -1 }));
            // The client still works.
            using (var s = engine.Client.OpenSession(new SessionOptions { WorkingDir = "/" }))
            {
                engine.Track(s.BackgroundRing);
                Assert.AreEqual("/\n", Read.Stream(Run(s, "import os\nprint(os.getcwd())\n"), StreamKind.Stdout));
            }
        }

        [Test]
        public void ACrashEndsTheSessionWithAbortedAndItsSignal()
        {
            using (var s = engine.Client.OpenSession())
            using (var other = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                engine.Track(other.BackgroundRing);
                Assert.AreEqual("2\n", Read.Stream(Run(s, "x = 2\nprint(x)\n"), StreamKind.Stdout));

                Execution crashed = s.Execute("print('before')\nimport ctypes; ctypes.string_at(0)\nprint('after')\n");
                try
                {
                    engine.Track(crashed.RingName);
                    List<Copied> recs;
                    using (var reader = crashed.OpenReader()) recs = Read.All(reader);
                    CollectionAssert.AreEqual(new[] { RecordKind.Started, RecordKind.Output, RecordKind.Finished },
                                              recs.Select(r => r.Kind).ToArray());
                    Assert.AreEqual("before\n", Read.Stream(recs, StreamKind.Stdout));
                    for (int i = 0; i < recs.Count; i++) Assert.AreEqual((ulong)i, recs[i].Seq, "seq gap-free");
                    var fin = recs.Last();
                    Assert.AreEqual(FinishStatus.Aborted, fin.FinishStatus);
                    Assert.AreEqual(11, fin.Signal, "SIGSEGV");
                    Assert.AreEqual(0, fin.ExitCode);

                    // Every later call that goes to the session: E_SESSION_DIED.
                    var e = Assert.Throws<SessionDiedException>(() => s.Execute("print(x)\n"));
                    Assert.AreEqual(Status.SessionDied, e.Status);
                    Assert.IsNotEmpty(e.Detail);
                    Assert.Throws<SessionDiedException>(() => s.Execute("pass\n"));
                    Assert.Throws<SessionDiedException>(() => crashed.Cancel());
                }
                finally { crashed.Dispose(); }

                // Only that session ended.
                Assert.AreEqual("ok\n", Read.Stream(Run(other, "print('ok')\n"), StreamKind.Stdout));
                using (var fresh = engine.Client.OpenSession())
                {
                    engine.Track(fresh.BackgroundRing);
                    Assert.AreEqual("False\n", Read.Stream(Run(fresh, "print('x' in globals())\n"), StreamKind.Stdout));
                }
            }
        }

        [Test]
        public void OsExitEndsTheSessionWithAbortedAndItsExitCode()
        {
            using (var s = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                var recs = Run(s, "import os, sys\nprint('bye')\nsys.stdout.flush()\nos._exit(7)\n");
                CollectionAssert.AreEqual(new[] { RecordKind.Started, RecordKind.Output, RecordKind.Finished },
                                          recs.Select(r => r.Kind).ToArray());
                Assert.AreEqual("bye\n", Read.Stream(recs, StreamKind.Stdout));
                var fin = recs.Last();
                Assert.AreEqual(FinishStatus.Aborted, fin.FinishStatus, "os._exit ends the worker as it ends python3");
                Assert.AreEqual(7, fin.ExitCode);
                Assert.AreEqual(0, fin.Signal);
                Assert.Throws<SessionDiedException>(() => s.Execute("pass\n"));
            }
        }

        [Test]
        public void SysExitStillEndsOnlyTheExecution()
        {
            using (var s = engine.Client.OpenSession())
            {
                engine.Track(s.BackgroundRing);
                var fin = Run(s, "y = 5\nimport sys\nsys.exit(4)\n").Last();
                Assert.AreEqual(FinishStatus.Exited, fin.FinishStatus);
                Assert.AreEqual(4, fin.ExitCode);
                Assert.AreEqual(0, fin.Signal);
                Assert.AreEqual("5\n", Read.Stream(Run(s, "print(y)\n"), StreamKind.Stdout));
            }
        }

        [Test]
        public void InputRequestAnsweredWithSendInput()
        {
            using (var s = engine.Client.OpenSession())
            using (var ex = s.Execute("import getpass\nname = input('who? ')\nprint('hi', name)\nprint(len(getpass.getpass()))\n"))
            using (var reader = ex.OpenReader())
            {
                engine.Track(s.BackgroundRing);
                engine.Track(ex.RingName);
                var prompts = new List<string>();
                var output = new StringBuilder();
                FinishStatus? fin = null;
                while (fin == null)
                {
                    Batch batch = reader.NextBatch(64, TimeSpan.FromSeconds(20));
                    try
                    {
                        Assert.IsFalse(batch.IsEnd, "the ring ended before FINISHED");
                        foreach (Record r in batch)
                        {
                            if (r.Kind == RecordKind.Output) output.Append(r.Text);
                            else if (r.Kind == RecordKind.Finished) fin = r.FinishStatus;
                            else if (r.Kind == RecordKind.InputRequest)
                            {
                                prompts.Add(r.Text + "|" + r.IsPassword);
                                ex.SendInput(prompts.Count == 1 ? "X\n" : "secret");
                            }
                        }
                    }
                    finally
                    {
                        batch.Dispose();
                    }
                }
                CollectionAssert.AreEqual(new[] { "who? |False", "Password: |True" }, prompts);
                Assert.AreEqual("hi X\n6\n", output.ToString());
                Assert.AreEqual(FinishStatus.Ok, fin);
                var late = Assert.Throws<ShmreplException>(() => ex.SendInput("late"));
                Assert.AreEqual(Status.State, late.Status);
            }
        }

        [Test]
        public void TerminalDescriptorsAnswerIsattyAndSize()
        {
            int[] pty = Posix.OpenPty(33, 99);
            int devnull = Posix.open("/dev/null", 1 /* O_WRONLY */);
            try
            {
                const string code = "import os, sys\nprint(sys.stdout.isatty(), sys.stderr.isatty(), tuple(os.get_terminal_size()))\n";
                using (var s = engine.Client.OpenSession(new SessionOptions { StdoutFd = pty[1], StderrFd = devnull }))
                {
                    engine.Track(s.BackgroundRing);
                    Assert.AreEqual("True False (99, 33)\n", Read.Stream(Run(s, code), StreamKind.Stdout));
                }
                using (var s = engine.Client.OpenSession(new SessionOptions()))
                {
                    engine.Track(s.BackgroundRing);
                    Assert.AreEqual("False\n", Read.Stream(Run(s, "import sys\nprint(sys.stdout.isatty())\n"), StreamKind.Stdout));
                }
                Assert.Throws<ArgumentOutOfRangeException>(() => engine.Client.OpenSession(new SessionOptions { StdoutFd = -1 }));
            }
            finally
            {
                Posix.close(pty[0]);
                Posix.close(pty[1]);
                Posix.close(devnull);
            }
        }

        static string PyStr(string s)
        {
            var b = new StringBuilder("'");
            foreach (char c in s)
            {
                if (c == '\\' || c == '\'') b.Append('\\');
                b.Append(c);
            }
            return b.Append('\'').ToString();
        }
    }
}
