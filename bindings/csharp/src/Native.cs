// P/Invoke declarations and exact mirrors of the C structs of shmrepl.h (ABI 1.x, up to 1.1).
// Every struct is blittable, so calls pass pointers without marshalling copies.
using System;
using System.Runtime.InteropServices;
using System.Security;

namespace Shmrepl.Interop
{
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeRecord
    {
        public uint Kind;
        public uint Stream;
        public uint Flags;
        public uint FinishStatus;
        public ulong ExecutionId;
        public ulong Seq;
        public ulong TimestampNs;
        public byte* Data;
        public UIntPtr DataLen;
        public byte* Raw;
        public UIntPtr RawLen;
        public long ExitCode;
        public ulong DurationNs;
        public ulong Reserved0;
        public ulong Reserved1;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeReaderOptions
    {
        public uint StructSize;
        public uint Start;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeClientOptions
    {
        public uint StructSize;
        public uint Autostart;
        public IntPtr SocketPath;
        public IntPtr EnginePath;
        public long ConnectTimeoutNs;
        public long RequestTimeoutNs;  // since 1.2 (the library accepts 32 bytes without it)
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeExecuteOptions
    {
        public uint StructSize;
        public uint Script;
        public ulong SessionId;
        public IntPtr Code;
        public UIntPtr CodeLen;
        public IntPtr ClientExecutionId;
        public IntPtr Filename;
        public IntPtr Argv;
        public UIntPtr Argc;
        public ulong RingCapacity;
        // Since 1.1 (the struct grew from 72 to 88 bytes; 72 is still accepted).
        public long TimeoutNs;
        public ulong MemoryLimit;
    }

    // shmrepl_session_options_t (since 1.1: 40 bytes; 1.2: 48, the terminal descriptors).
    [StructLayout(LayoutKind.Sequential)]
    public struct NativeSessionOptions
    {
        public uint StructSize;
        public uint Flags;
        public IntPtr WorkingDir;
        public IntPtr Env;
        public UIntPtr Envc;
        public int StdinFdPlusOne;
        public uint Reserved;
        public int StdoutFdPlusOne;
        public int StderrFdPlusOne;
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeBytes
    {
        public byte* Ptr;
        public UIntPtr Len;
    }

    // The calls of libshmrepl. A failed call and the shmrepl_last_error() that explains
    // it must run on one OS thread with no shmrepl call between them: every wrapper
    // passes the status straight to Check.Ok, which reads the detail first thing. Mono
    // runs a managed thread on one OS thread for its whole life, and finalizers run on
    // their own thread, so nothing else calls into the library in between.
    [SuppressUnmanagedCodeSecurity]
    public static unsafe class Native
    {
        public const string Lib = "shmrepl";
        // The size of each options struct this binding was written against (ABI 1.0).
        public const uint ReaderOptionsSize = 8;
        public const uint ClientOptionsSize = 40;  // 1.2: RequestTimeoutNs (1.0: 32)
        // ABI 1.2 (1.1: 40).
        public const uint SessionOptionsSize = 48;
        // ABI 1.1: shmrepl_execute_options_t with timeout_ns and memory_limit (1.0: 72).
        public const uint ExecuteOptionsSize = 88;
        public const uint ExecuteOptionsSize10 = 72;

        [DllImport(Lib)] public static extern IntPtr shmrepl_version();
        [DllImport(Lib)] public static extern uint shmrepl_abi_version();
        [DllImport(Lib)] public static extern IntPtr shmrepl_status_str(int status);
        [DllImport(Lib)] public static extern IntPtr shmrepl_last_error();

        [DllImport(Lib)] public static extern int shmrepl_reader_open(byte* ringName, NativeReaderOptions* options, out IntPtr reader);
        [DllImport(Lib)] public static extern void shmrepl_reader_close(IntPtr reader);
        [DllImport(Lib)] public static extern int shmrepl_reader_next(IntPtr reader, long timeoutNs, NativeRecord* record);
        [DllImport(Lib)] public static extern int shmrepl_reader_next_batch(IntPtr reader, NativeRecord* records, UIntPtr max, out UIntPtr n, long timeoutNs);
        [DllImport(Lib)] public static extern int shmrepl_reader_release(IntPtr reader, UIntPtr n);
        [DllImport(Lib)] public static extern UIntPtr shmrepl_reader_held(IntPtr reader);
        [DllImport(Lib)] public static extern ulong shmrepl_reader_execution_id(IntPtr reader);
        [DllImport(Lib)] public static extern int shmrepl_reader_mapping(IntPtr reader, out byte* baseAddress, out UIntPtr len);

        [DllImport(Lib)] public static extern int shmrepl_record_error(NativeRecord* record, NativeBytes* ename, NativeBytes* evalue, UIntPtr* nLines);
        [DllImport(Lib)] public static extern int shmrepl_record_traceback_line(NativeRecord* record, UIntPtr index, NativeBytes* line);

        [DllImport(Lib)] public static extern int shmrepl_client_connect(NativeClientOptions* options, out IntPtr client);
        [DllImport(Lib)] public static extern void shmrepl_client_close(IntPtr client);
        [DllImport(Lib)] public static extern uint shmrepl_client_engine_pid(IntPtr client);
        [DllImport(Lib)] public static extern int shmrepl_session_open(IntPtr client, out ulong sessionId);
        // Since 1.1 (symbol version SHMREPL_1.1): a 1.0 library lacks it.
        [DllImport(Lib)] public static extern int shmrepl_session_open_ex(IntPtr client, NativeSessionOptions* options, out ulong sessionId);
        [DllImport(Lib)] public static extern IntPtr shmrepl_session_background_ring(IntPtr client, ulong sessionId);
        [DllImport(Lib)] public static extern int shmrepl_session_close(IntPtr client, ulong sessionId);
        [DllImport(Lib)] public static extern int shmrepl_execute(IntPtr client, NativeExecuteOptions* options, out IntPtr execution);
        [DllImport(Lib)] public static extern ulong shmrepl_execution_id(IntPtr execution);
        [DllImport(Lib)] public static extern IntPtr shmrepl_execution_ring_name(IntPtr execution);
        [DllImport(Lib)] public static extern int shmrepl_execution_reader(IntPtr execution, NativeReaderOptions* options, out IntPtr reader);
        [DllImport(Lib)] public static extern int shmrepl_execution_cancel(IntPtr execution);
        // Since 1.2 (symbol version SHMREPL_1.2).
        [DllImport(Lib)] public static extern int shmrepl_execution_send_input(IntPtr execution, byte* text, UIntPtr len);
        [DllImport(Lib)] public static extern void shmrepl_execution_close(IntPtr execution);
        [DllImport(Lib)] public static extern int shmrepl_engine_shutdown(IntPtr client);

        // To honour $SHMREPL_LIBRARY: once a library with SONAME libshmrepl.so.0 is loaded,
        // the dynamic loader hands it out for that name too.
        [DllImport("libdl.so.2")] public static extern IntPtr dlopen(byte* file, int mode);
        [DllImport("libdl.so.2")] public static extern IntPtr dlerror();
        public const int RTLD_NOW = 2, RTLD_GLOBAL = 0x100;
    }
}
