using System;
using System.Threading;
using Shmrepl.Interop;

namespace Shmrepl
{
    // shmrepl_status_t. Values are never reused; a code newer than this binding keeps
    // its number (an enum holds any int: ToString() prints it, switch falls to default).
    public enum Status
    {
        Ok = 0,
        Invalid = -1,
        NotFound = -2,
        Again = -3,
        Timeout = -4,
        Eof = -5,
        Corrupt = -6,
        Version = -7,
        ProducerDied = -8,
        NoSlot = -9,
        NoMemory = -10,
        Permission = -11,
        System = -12,
        EngineDied = -13,
        Protocol = -14,
        State = -15,
        Connect = -16,
        TooLarge = -17,
        SessionDied = -18,  // since 1.1
        Limit = -19,        // since 1.2
        Internal = -99,
    }

    // A failed shmrepl call: its status, the library's text for it and the detail that
    // shmrepl_last_error() gave right after the call, on the calling thread.
    public class ShmreplException : Exception
    {
        public Status Status { get; }
        public string Detail { get; }

        public ShmreplException(Status status, string detail)
            : base(Describe(status, detail))
        {
            Status = status;
            Detail = detail ?? "";
        }

        static string Describe(Status status, string detail)
        {
            string name = Enum.IsDefined(typeof(Status), status) ? status.ToString() : "status " + (int)status;
            string text = Library.Loaded ? Library.StatusText(status) : "";
            string s = "shmrepl: " + name;
            if (text.Length > 0) s += " (" + text + ")";
            if (!string.IsNullOrEmpty(detail)) s += ": " + detail;
            return s;
        }

        // Builds the exception of a failed status, reading shmrepl_last_error() now: the
        // caller must call this right after the failing call, on the same thread.
        internal static ShmreplException FromLastError(int status)
        {
            string detail = Utf8.FromC(Native.shmrepl_last_error());
            return Create((Status)status, detail);
        }

        // The exception type for a status (subclasses for the common ones).
        public static ShmreplException Create(Status status, string detail)
        {
            switch (status)
            {
                case Status.NotFound: return new NotFoundException(status, detail);
                case Status.Again:
                case Status.Timeout: return new ShmreplTimeoutException(status, detail);
                case Status.ProducerDied: return new ProducerDiedException(status, detail);
                case Status.EngineDied: return new EngineDiedException(status, detail);
                case Status.SessionDied: return new SessionDiedException(status, detail);
                case Status.Limit: return new LimitException(status, detail);
                case Status.Connect: return new ConnectException(status, detail);
                case Status.Version: return new VersionException(status, detail);
                default: return new ShmreplException(status, detail);
            }
        }
    }

    // E_NOT_FOUND: no such ring, session or execution.
    public class NotFoundException : ShmreplException
    { public NotFoundException(Status s, string d) : base(s, d) { } }

    // E_TIMEOUT (nothing before the timeout) or E_AGAIN (nothing now, timeout 0): retryable.
    public class ShmreplTimeoutException : ShmreplException
    { public ShmreplTimeoutException(Status s, string d) : base(s, d) { } }

    // E_PRODUCER_DIED: the ring's writer died; every record it published came first.
    public class ProducerDiedException : ShmreplException
    { public ProducerDiedException(Status s, string d) : base(s, d) { } }

    // E_ENGINE_DIED: the engine connection closed; every later request fails so too.
    public class EngineDiedException : ShmreplException
    { public EngineDiedException(Status s, string d) : base(s, d) { } }

    // E_SESSION_DIED: the session's worker process died (a crash, os._exit, a kill, or the
    // engine's death); every later call that goes to the session fails so too. Open a new
    // session. The session's rings end with FINISHED Aborted (Record.Signal says the signal).
    public class SessionDiedException : ShmreplException
    { public SessionDiedException(Status s, string d) : base(s, d) { } }

    // E_LIMIT (1.2): an engine limit (connections or sessions of this process or in all,
    // the engine's descriptors) is reached; Detail names the engine option. Retry after
    // closing some.
    public class LimitException : ShmreplException
    { public LimitException(Status s, string d) : base(s, d) { } }

    // E_CONNECT: no engine listens and none could be started.
    public class ConnectException : ShmreplException
    { public ConnectException(Status s, string d) : base(s, d) { } }

    // E_VERSION, also raised when the loaded library is not ABI version 1.
    public class VersionException : ShmreplException
    { public VersionException(Status s, string d) : base(s, d) { } }

    internal static class Check
    {
        // Throws for a failed status. Call it on the status of the call just made.
        internal static void Ok(int status)
        {
            if (status != 0) throw ShmreplException.FromLastError(status);
        }
    }
}
