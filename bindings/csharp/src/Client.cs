using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Shmrepl.Interop;

namespace Shmrepl
{
    public sealed class ClientOptions
    {
        // The engine's socket. null: $SHMREPL_SOCKET, else the per-user default.
        public string SocketPath { get; set; }
        // The engine to start. null: $SHMREPL_ENGINE, else next to libshmrepl.
        public string EnginePath { get; set; }
        // Start an engine when none listens (default true).
        public bool Autostart { get; set; } = true;
        // How long to wait for a started engine to listen. Zero: the library's default (5 s).
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.Zero;
        // How long any one request may wait for its reply (libshmrepl 1.2). Zero: no limit.
        // When it passes the call throws ShmreplTimeoutException and the connection is
        // unusable: later calls throw with Status.State (connect again).
        public TimeSpan RequestTimeout { get; set; } = TimeSpan.Zero;
    }

    // Where and how a session's worker process runs (shmrepl_session_options_t, libshmrepl
    // 1.1; StdoutFd/StderrFd 1.2). Unset members mean the engine's defaults.
    public sealed class SessionOptions
    {
        // The session's working folder (os.getcwd()). null: the engine's.
        // NotFoundException from OpenSession if it does not exist.
        public string WorkingDir { get; set; }
        // The WHOLE environment of the session (os.environ), NAME -> value; an empty
        // dictionary is an empty environment. null: the engine's environment.
        public IDictionary<string, string> Env { get; set; }
        // A descriptor of this process that becomes the session's standard input (passed
        // to the worker; this process keeps its own and may close it after OpenSession).
        // null: stdin is /dev/null, and input() asks the client (an INPUT_REQUEST record,
        // answered with Execution.SendInput). A FileStream's is
        // fs.SafeFileHandle.DangerousGetHandle().
        public int? StdinFd { get; set; }
        // Descriptors of the caller's standard output and error, never written: they only
        // answer the program's sys.stdout/sys.stderr.isatty() and the terminal size
        // (os.get_terminal_size(), shutil.get_terminal_size(), live). null: none.
        public int? StdoutFd { get; set; }
        public int? StderrFd { get; set; }
    }

    public sealed class ExecuteOptions
    {
        public ulong SessionId { get; set; }
        // Python source.
        public string Code { get; set; }
        // Given back as the data of the STARTED record.
        public string ClientExecutionId { get; set; }
        // Shown in tracebacks; null: "<shmrepl>".
        public string Filename { get; set; }
        // sys.argv during the execution.
        public string[] Argv { get; set; }
        // Run as a program (python3 FILE): no RESULT records.
        public bool Script { get; set; }
        // Data bytes of the ring; 0: the engine's default.
        public ulong RingCapacity { get; set; }
        // Since libshmrepl 1.1, limits for code that is not trusted to end:
        // how long the execution may run, from when its worker takes it: then it is
        // interrupted (KeyboardInterrupt) and, if it goes on for 3 s more, its worker is
        // killed (the session dies); FINISHED says FinishStatus.Timeout either way.
        // null or Timeout.InfiniteTimeSpan: no limit; otherwise it must be positive.
        public TimeSpan? Timeout { get; set; }
        // Bytes the worker's heap may grow by while the execution runs; an allocation
        // beyond raises MemoryError and FINISHED says FinishStatus.MemoryLimit. 0: no limit.
        public ulong MemoryLimit { get; set; }
    }

    // A connection to an engine. May be used from several threads (requests are
    // serialized); Dispose closes it, and the engine then drops its sessions.
    public sealed unsafe class Client : IDisposable
    {
        IntPtr handle;
        readonly object gate = new object();

        Client(IntPtr handle)
        {
            this.handle = handle;
        }

        ~Client()
        {
            if (handle != IntPtr.Zero) Native.shmrepl_client_close(handle);
        }

        // Connects, starting an engine if none listens and Autostart is on.
        // ConnectException when no engine could be reached or started.
        public static Client Connect(ClientOptions options = null)
        {
            Library.EnsureLoaded();
            return ConnectLoaded(options ?? new ClientOptions());
        }

        // Mono binds a P/Invoke when it compiles the calling method: methods that call the
        // library are first compiled after Library.EnsureLoaded() ran ($SHMREPL_LIBRARY).
        [MethodImpl(MethodImplOptions.NoInlining)]
        static Client ConnectLoaded(ClientOptions options)
        {
            byte[] socket = Utf8.ToC(options.SocketPath), engine = Utf8.ToC(options.EnginePath);
            IntPtr h;
            fixed (byte* s = socket)
            fixed (byte* e = engine)
            {
                var o = new NativeClientOptions
                {
                    StructSize = Native.ClientOptionsSize,
                    Autostart = options.Autostart ? 1u : 2u,
                    SocketPath = (IntPtr)s,
                    EnginePath = (IntPtr)e,
                    ConnectTimeoutNs = options.ConnectTimeout <= TimeSpan.Zero ? 0 : Reader.Nanoseconds(options.ConnectTimeout),
                    RequestTimeoutNs = options.RequestTimeout <= TimeSpan.Zero ? 0 : Math.Max(1, Reader.Nanoseconds(options.RequestTimeout)),
                };
                Check.Ok(Native.shmrepl_client_connect(&o, out h));
            }
            return new Client(h);
        }

        // The engine's process id.
        public int EnginePid
        {
            get
            {
                int pid;
                lock (gate) pid = (int)Native.shmrepl_client_engine_pid(Handle);
                GC.KeepAlive(this);
                return pid;
            }
        }

        // A new session: its own Python namespace, one execution at a time.
        public Session OpenSession()
        {
            ulong id;
            lock (gate) Check.Ok(Native.shmrepl_session_open(Handle, out id));
            return new Session(this, id);
        }

        // A new session with a working folder, environment and stdin of its own
        // (shmrepl_session_open_ex). null options: as OpenSession(). VersionException if the
        // loaded libshmrepl is older than 1.1.
        public Session OpenSession(SessionOptions options)
        {
            if (options == null) return OpenSession();
            byte[] dir = Utf8.ToC(options.WorkingDir);
            byte[][] env = null;
            if (options.Env != null)
            {
                env = new byte[options.Env.Count][];
                int i = 0;
                foreach (var kv in options.Env)
                {
                    if (string.IsNullOrEmpty(kv.Key) || kv.Key.IndexOf('=') >= 0)
                        throw new ArgumentException("an environment variable name must be non-empty and hold no '=': \"" + kv.Key + "\"", nameof(options));
                    if (kv.Value == null)
                        throw new ArgumentException("the environment variable " + kv.Key + " has a null value", nameof(options));
                    if (i == env.Length) throw new InvalidOperationException("options.Env changed while it was read");
                    env[i++] = Utf8.ToC(kv.Key + "=" + kv.Value);
                }
                if (i != env.Length) throw new InvalidOperationException("options.Env changed while it was read");
            }
            if (options.StdinFd.HasValue && options.StdinFd.Value < 0)
                throw new ArgumentOutOfRangeException(nameof(options), "StdinFd must be a descriptor (>= 0)");
            if (options.StdoutFd.HasValue && options.StdoutFd.Value < 0)
                throw new ArgumentOutOfRangeException(nameof(options), "StdoutFd must be a descriptor (>= 0)");
            if (options.StderrFd.HasValue && options.StderrFd.Value < 0)
                throw new ArgumentOutOfRangeException(nameof(options), "StderrFd must be a descriptor (>= 0)");
            int n = env == null ? 0 : env.Length;
            var handles = new GCHandle[n];
            // Never NULL when Env is set: an empty environment is env != NULL, envc 0.
            IntPtr* ptrs = stackalloc IntPtr[Math.Max(1, n)];
            ulong id;
            try
            {
                for (int i = 0; i < n; i++)
                {
                    handles[i] = GCHandle.Alloc(env[i], GCHandleType.Pinned);
                    ptrs[i] = handles[i].AddrOfPinnedObject();
                }
                fixed (byte* d = dir)
                {
                    var o = new NativeSessionOptions
                    {
                        StructSize = Native.SessionOptionsSize,
                        Flags = 0,
                        WorkingDir = (IntPtr)d,
                        Env = env == null ? IntPtr.Zero : (IntPtr)ptrs,
                        Envc = (UIntPtr)(ulong)n,
                        StdinFdPlusOne = options.StdinFd.HasValue ? options.StdinFd.Value + 1 : 0,
                        Reserved = 0,
                        StdoutFdPlusOne = options.StdoutFd.HasValue ? options.StdoutFd.Value + 1 : 0,
                        StderrFdPlusOne = options.StderrFd.HasValue ? options.StderrFd.Value + 1 : 0,
                    };
                    lock (gate)
                    {
                        try { id = OpenSessionEx(Handle, &o); }
                        catch (EntryPointNotFoundException e)
                        {
                            throw new VersionException(Status.Version, "the loaded libshmrepl " + Library.Version +
                                                       " lacks shmrepl_session_open_ex (symbol version SHMREPL_1.1): " + e.Message);
                        }
                    }
                }
            }
            finally
            {
                foreach (var g in handles) if (g.IsAllocated) g.Free();
            }
            GC.KeepAlive(this);
            return new Session(this, id);
        }

        // Apart, so that a 1.0 library's missing symbol (found when Mono binds the call)
        // surfaces at this call, where OpenSession turns it into a VersionException.
        [MethodImpl(MethodImplOptions.NoInlining)]
        static ulong OpenSessionEx(IntPtr client, NativeSessionOptions* o)
        {
            ulong id;
            Check.Ok(Native.shmrepl_session_open_ex(client, o, out id));
            return id;
        }

        // The session's background ring name (output of threads that outlive an
        // execution), or null if the engine has none.
        public string BackgroundRing(ulong sessionId)
        {
            lock (gate)
            {
                string s = Utf8.FromC(Native.shmrepl_session_background_ring(Handle, sessionId));
                GC.KeepAlive(this);
                return s.Length == 0 ? null : s;
            }
        }

        // Cancels what runs in the session and drops it. NotFoundException if unknown.
        public void CloseSession(ulong sessionId)
        {
            lock (gate) Check.Ok(Native.shmrepl_session_close(Handle, sessionId));
            GC.KeepAlive(this);
        }

        // Queues code in a session; the ring exists (holding STARTED) when this returns.
        public Execution Execute(ExecuteOptions options)
        {
            if (options == null) throw new ArgumentNullException(nameof(options));
            long timeoutNs = TimeoutNs(options.Timeout);
            byte[] code = Utf8.ToC(options.Code ?? "");
            byte[] id = Utf8.ToC(options.ClientExecutionId);
            byte[] filename = Utf8.ToC(options.Filename);
            string[] argv = options.Argv ?? new string[0];
            var args = new byte[argv.Length][];
            for (int i = 0; i < argv.Length; i++)
                args[i] = Utf8.ToC(argv[i] ?? throw new ArgumentNullException(nameof(options), "an Argv entry is null"));
            var handles = new GCHandle[args.Length];
            IntPtr* ptrs = stackalloc IntPtr[Math.Max(1, args.Length)];
            IntPtr h;
            try
            {
                for (int i = 0; i < args.Length; i++)
                {
                    handles[i] = GCHandle.Alloc(args[i], GCHandleType.Pinned);
                    ptrs[i] = handles[i].AddrOfPinnedObject();
                }
                fixed (byte* c = code)
                fixed (byte* ci = id)
                fixed (byte* f = filename)
                {
                    var o = new NativeExecuteOptions
                    {
                        StructSize = Native.ExecuteOptionsSize,
                        Script = options.Script ? 1u : 0u,
                        SessionId = options.SessionId,
                        Code = (IntPtr)c,
                        CodeLen = (UIntPtr)(ulong)(code.Length - 1),
                        ClientExecutionId = (IntPtr)ci,
                        Filename = (IntPtr)f,
                        Argv = args.Length == 0 ? IntPtr.Zero : (IntPtr)ptrs,
                        Argc = (UIntPtr)(ulong)args.Length,
                        RingCapacity = options.RingCapacity,
                        TimeoutNs = timeoutNs,
                        MemoryLimit = options.MemoryLimit,
                    };
                    lock (gate) Check.Ok(Native.shmrepl_execute(Handle, &o, out h));
                }
            }
            finally
            {
                foreach (var g in handles) if (g.IsAllocated) g.Free();
            }
            GC.KeepAlive(this);
            return new Execution(h);
        }

        // ExecuteOptions.Timeout as timeout_ns: 0 for none, whole nanoseconds (at least 1).
        static long TimeoutNs(TimeSpan? timeout)
        {
            if (!timeout.HasValue || timeout.Value == System.Threading.Timeout.InfiniteTimeSpan) return 0;
            TimeSpan t = timeout.Value;
            if (t <= TimeSpan.Zero)
                throw new ArgumentOutOfRangeException(nameof(ExecuteOptions.Timeout), t,
                    "shmrepl: ExecuteOptions.Timeout must be positive (null or Timeout.InfiniteTimeSpan: no limit)");
            const long max = long.MaxValue / 100;
            return t.Ticks > max ? long.MaxValue : t.Ticks * 100;
        }

        // Asks the engine to stop (it cancels everything, unlinks its rings and socket) and
        // waits until it closed the connection. Only Dispose is left to do afterwards.
        public void ShutdownEngine()
        {
            lock (gate) Check.Ok(Native.shmrepl_engine_shutdown(Handle));
            GC.KeepAlive(this);
        }

        IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException(nameof(Client), "shmrepl: the client was disposed");
                return handle;
            }
        }

        public void Dispose()
        {
            lock (gate)
            {
                if (handle == IntPtr.Zero) return;
                Native.shmrepl_client_close(handle);
                handle = IntPtr.Zero;
            }
            GC.SuppressFinalize(this);
        }
    }

    // A session of a client: Dispose closes it (errors ignored: a dead engine or a dead
    // worker leaves no session); Close() reports them. After the session's worker died
    // (crash, os._exit, kill) Execute throws SessionDiedException: open a new session.
    public sealed class Session : IDisposable
    {
        readonly Client client;
        bool closed;

        internal Session(Client client, ulong id)
        {
            this.client = client;
            Id = id;
        }

        public ulong Id { get; }

        // The background ring's name, or null if the engine has none.
        public string BackgroundRing => client.BackgroundRing(Id);

        public Execution Execute(string code, string clientExecutionId = null)
        {
            return client.Execute(new ExecuteOptions { SessionId = Id, Code = code, ClientExecutionId = clientExecutionId });
        }

        public Execution Execute(ExecuteOptions options)
        {
            if (options == null) throw new ArgumentNullException(nameof(options));
            options.SessionId = Id;
            return client.Execute(options);
        }

        public void Close()
        {
            if (closed) return;
            closed = true;
            client.CloseSession(Id);
        }

        public void Dispose()
        {
            try { Close(); }
            catch (ShmreplException) { }
            catch (ObjectDisposedException) { }
        }
    }

    // One queued execution. Dispose releases its ring (open readers keep working).
    public sealed unsafe class Execution : IDisposable
    {
        IntPtr handle;
        readonly object gate = new object();

        internal Execution(IntPtr handle)
        {
            this.handle = handle;
            Id = Native.shmrepl_execution_id(handle);
            RingName = Utf8.FromC(Native.shmrepl_execution_ring_name(handle));
        }

        ~Execution()
        {
            if (handle != IntPtr.Zero) Native.shmrepl_execution_close(handle);
        }

        // The engine's id: every record of this execution carries it.
        public ulong Id { get; }

        // The ring's name, for Reader.Open (also from other processes).
        public string RingName { get; }

        public Reader OpenReader(ReaderStart start = ReaderStart.Oldest)
        {
            var o = Reader.Options(start);
            IntPtr r;
            lock (gate) Check.Ok(Native.shmrepl_execution_reader(Handle, &o, out r));
            GC.KeepAlive(this);
            return new Reader(r);
        }

        // Raises KeyboardInterrupt in the execution (a queued one finishes cancelled).
        // Fine after it finished; may be called from any thread.
        public void Cancel()
        {
            lock (gate) Check.Ok(Native.shmrepl_execution_cancel(Handle));
            GC.KeepAlive(this);
        }

        // Answers the execution's INPUT_REQUEST: the program's input() (or getpass())
        // returns text (less one trailing newline). ShmreplException with Status.State if it
        // is not waiting for input (none asked, already answered, finished). Any thread.
        // VersionException if the loaded libshmrepl is older than 1.2.
        public void SendInput(string text)
        {
            byte[] b = Encoding.UTF8.GetBytes(text ?? "");
            lock (gate)
            {
                try { SendInputNative(Handle, b); }
                catch (EntryPointNotFoundException e)
                {
                    throw new VersionException(Status.Version, "the loaded libshmrepl " + Library.Version +
                                               " lacks shmrepl_execution_send_input (symbol version SHMREPL_1.2): " + e.Message);
                }
            }
            GC.KeepAlive(this);
        }

        // Apart, so that an older library's missing symbol surfaces in SendInput.
        [MethodImpl(MethodImplOptions.NoInlining)]
        static void SendInputNative(IntPtr execution, byte[] text)
        {
            fixed (byte* p = text) Check.Ok(Native.shmrepl_execution_send_input(execution, p, (UIntPtr)(ulong)text.Length));
        }

        IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException(nameof(Execution), "shmrepl: the execution was disposed");
                return handle;
            }
        }

        public void Dispose()
        {
            lock (gate)
            {
                if (handle == IntPtr.Zero) return;
                Native.shmrepl_execution_close(handle);
                handle = IntPtr.Zero;
            }
            GC.SuppressFinalize(this);
        }
    }
}
