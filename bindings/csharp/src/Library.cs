using System;
using System.Runtime.CompilerServices;
using Shmrepl.Interop;

namespace Shmrepl
{
    // Loading libshmrepl and checking that it speaks ABI version 1; every entry point
    // (Client.Connect, Reader.Open) calls Library.EnsureLoaded() first.
    public static unsafe class Library
    {
        public const uint RequiredAbiVersion = 1;
        static readonly object Gate = new object();
        static volatile bool loaded;

        // The version string of the loaded library ("MAJOR.MINOR.PATCH").
        public static string Version { get { EnsureLoaded(); return ReadVersion(); } }

        public static uint AbiVersion { get { EnsureLoaded(); return ReadAbiVersion(); } }

        internal static bool Loaded => loaded;

        // Mono binds a P/Invoke when it compiles the method that calls it, and a failed
        // binding sticks: every method calling the library is compiled only after the
        // preload below (NoInlining here, and the *Loaded methods of Client and Reader).
        [MethodImpl(MethodImplOptions.NoInlining)]
        static string ReadVersion()
        {
            return Utf8.FromC(Native.shmrepl_version());
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        internal static string StatusText(Status status)
        {
            return Utf8.FromC(Native.shmrepl_status_str((int)status));
        }

        public static void EnsureLoaded()
        {
            if (loaded) return;
            lock (Gate)
            {
                if (loaded) return;
                PreloadFromEnvironment();
                uint v;
                try { v = ReadAbiVersion(); }
                catch (DllNotFoundException e)
                {
                    throw new DllNotFoundException(
                        "shmrepl: cannot load libshmrepl.so.0; set LD_LIBRARY_PATH to its folder " +
                        "or SHMREPL_LIBRARY to the file (" + e.Message + ")", e);
                }
                catch (EntryPointNotFoundException e)
                {
                    throw new VersionException(Status.Version, "the loaded libshmrepl lacks shmrepl_abi_version (" + e.Message + ")");
                }
                if (v != RequiredAbiVersion)
                    throw new VersionException(Status.Version,
                        "libshmrepl has ABI version " + v + ", this binding needs " + RequiredAbiVersion);
                loaded = true;
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        static uint ReadAbiVersion()
        {
            return Native.shmrepl_abi_version();
        }

        // $SHMREPL_LIBRARY names the library file. Loaded first, it answers the later
        // lookup of "libshmrepl.so.0" by its SONAME.
        static void PreloadFromEnvironment()
        {
            string path = Environment.GetEnvironmentVariable("SHMREPL_LIBRARY");
            if (string.IsNullOrEmpty(path)) return;
            byte[] name = Utf8.ToC(path);
            IntPtr h;
            try
            {
                fixed (byte* p = name) h = Native.dlopen(p, Native.RTLD_NOW | Native.RTLD_GLOBAL);
            }
            catch (DllNotFoundException) { return; }  // no libdl: fall back to the search path
            if (h == IntPtr.Zero)
                throw new DllNotFoundException("shmrepl: SHMREPL_LIBRARY=" + path + " cannot be loaded: " +
                                               Utf8.FromC(Native.dlerror()));
        }
    }
}
