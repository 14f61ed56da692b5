using System;
using System.Text;

namespace Shmrepl
{
    // Strings cross to C as NUL-terminated UTF-8 made here (Mono's default string
    // marshalling is not UTF-8 on every platform).
    internal static unsafe class Utf8
    {
        static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        internal static byte[] ToC(string s)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0) throw new ArgumentException("a string for shmrepl must not contain NUL");
            byte[] b = new byte[Strict.GetByteCount(s) + 1];
            Strict.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        internal static string FromC(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            byte* s = (byte*)p;
            int n = 0;
            while (s[n] != 0) n++;
            return Encoding.UTF8.GetString(s, n);
        }

        internal static string Decode(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length == 0) return "";
            fixed (byte* p = &System.Runtime.InteropServices.MemoryMarshal.GetReference(bytes))
                return Encoding.UTF8.GetString(p, bytes.Length);
        }
    }
}
