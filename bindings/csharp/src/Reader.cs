using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using Shmrepl.Interop;

namespace Shmrepl
{
    // shmrepl_reader_start_t.
    public enum ReaderStart : uint
    {
        Oldest = 0,  // the oldest record the ring still holds (every record, if attached early)
        Newest = 1,  // only records written after attaching
    }

    // A reader attached to one ring. Used by one thread at a time (as the C reader).
    // Records are views into the ring, handed out in order and released in order.
    public sealed unsafe class Reader : IDisposable
    {
        // A native array of shmrepl_record_t that one next/next_batch call fills; it goes
        // back to the pool once every record in it has been released.
        sealed class Chunk
        {
            internal NativeRecord* Mem;
            internal int Capacity;
            internal long End;  // ordinal after its last record
        }

        IntPtr handle;
        long handedOut;  // records handed out since attaching
        long released;   // of those, released
        readonly List<Chunk> free = new List<Chunk>();
        readonly Queue<Chunk> inUse = new Queue<Chunk>();

        internal Reader(IntPtr handle)
        {
            this.handle = handle;
        }

        ~Reader()
        {
            Close(false);
        }

        // Attaches to the ring `ringName` (as Execution.RingName or Session.BackgroundRing
        // give it, also from another process). NotFoundException if there is none;
        // ShmreplException with Status.Invalid for a malformed name.
        public static Reader Open(string ringName, ReaderStart start = ReaderStart.Oldest)
        {
            if (ringName == null) throw new ArgumentNullException(nameof(ringName));
            Library.EnsureLoaded();
            return OpenLoaded(ringName, start);
        }

        // Compiled after the library is loaded (see Client.ConnectLoaded).
        [MethodImpl(MethodImplOptions.NoInlining)]
        static Reader OpenLoaded(string ringName, ReaderStart start)
        {
            byte[] name = Utf8.ToC(ringName);
            var opts = Options(start);
            IntPtr h;
            fixed (byte* p = name)
                Check.Ok(Native.shmrepl_reader_open(p, &opts, out h));
            return new Reader(h);
        }

        internal static NativeReaderOptions Options(ReaderStart start)
        {
            return new NativeReaderOptions { StructSize = Native.ReaderOptionsSize, Start = (uint)start };
        }

        public bool IsDisposed => handle == IntPtr.Zero;

        // The execution id the ring's header carries.
        public ulong ExecutionId
        {
            get
            {
                ulong id = Native.shmrepl_reader_execution_id(Handle);
                GC.KeepAlive(this);  // no finalizer may close the handle during the call
                return id;
            }
        }

        // Records handed out and not yet released.
        public long Held { get { var h = Handle; return handedOut - released; } }

        // The reader's whole mapping of the ring; every view lies inside. Valid until disposed.
        public ReaderMapping Mapping()
        {
            byte* b;
            UIntPtr len;
            Check.Ok(Native.shmrepl_reader_mapping(Handle, out b, out len));
            GC.KeepAlive(this);
            return new ReaderMapping((IntPtr)b, (ulong)len);
        }

        // The next record. Returns false when the ring is finished and fully read (E_EOF).
        // timeout: TimeSpan.Zero does not wait (ShmreplTimeoutException with Status.Again if
        // nothing is there), Timeout.InfiniteTimeSpan waits forever, else at most that long
        // (ShmreplTimeoutException with Status.Timeout). ProducerDiedException when the writer
        // died (after every record it published).
        public bool Next(TimeSpan timeout, out Record record)
        {
            var h = Handle;
            Chunk c = Take(1);
            int st = Native.shmrepl_reader_next(h, Nanoseconds(timeout), c.Mem);
            if (st != 0)
            {
                var e = st == (int)Status.Eof ? null : ShmreplException.FromLastError(st);
                free.Add(c);
                record = default(Record);
                if (e != null) throw e;
                return false;
            }
            c.End = handedOut + 1;
            inUse.Enqueue(c);
            record = new Record(this, c.Mem, handedOut);
            handedOut++;
            return true;
        }

        // Up to `max` records from one shmrepl_reader_next_batch call: waits (as Next) only
        // when none is ready. At the end of the ring the batch is empty and IsEnd is true.
        public Batch NextBatch(int max, TimeSpan timeout)
        {
            if (max <= 0) throw new ArgumentOutOfRangeException(nameof(max), "max must be positive");
            var h = Handle;
            Chunk c = Take(max);
            UIntPtr n;
            int st = Native.shmrepl_reader_next_batch(h, c.Mem, (UIntPtr)(ulong)max, out n, Nanoseconds(timeout));
            if (st != 0)
            {
                var e = st == (int)Status.Eof ? null : ShmreplException.FromLastError(st);
                free.Add(c);
                if (e != null) throw e;
                return new Batch(this, null, 0, handedOut);
            }
            int count = (int)(ulong)n;
            long first = handedOut;
            handedOut += count;
            c.End = handedOut;
            inUse.Enqueue(c);
            return new Batch(this, c.Mem, count, first);
        }

        // Gives back the oldest `n` records held: their views end, the producer may reuse
        // the space. Release what you are done with before waiting for more.
        public void Release(long n)
        {
            var h = Handle;
            if (n < 0 || n > handedOut - released)
                throw new ArgumentOutOfRangeException(nameof(n), "shmrepl: release " + n + " of " + (handedOut - released) + " records held");
            if (n == 0) return;
            Check.Ok(Native.shmrepl_reader_release(h, (UIntPtr)(ulong)n));
            released += n;
            validFrom = released;
            while (inUse.Count > 0 && inUse.Peek().End <= released) free.Add(inUse.Dequeue());
        }

        // Releases every record held.
        public void ReleaseAll()
        {
            Release(Held);
        }

        // Releases every record before ordinal `end` not yet released (Batch.Dispose).
        internal void ReleaseThrough(long end)
        {
            if (handle == IntPtr.Zero) return;  // the reader's close ended them all
            if (end > released) Release(end - released);
        }

        // A record of ordinal o is held while o >= validFrom: validFrom is the count of
        // released records, and long.MaxValue once the reader is disposed.
        internal long validFrom;

        internal static void ThrowNotHeld(Reader r)
        {
            if (r == null) throw new InvalidOperationException("shmrepl: an empty Record");
            if (r.handle == IntPtr.Zero) throw new ObjectDisposedException(nameof(Reader), "shmrepl: the record's reader was disposed");
            throw new InvalidOperationException("shmrepl: the record was released");
        }

        IntPtr Handle
        {
            get
            {
                var h = handle;
                if (h == IntPtr.Zero) throw new ObjectDisposedException(nameof(Reader), "shmrepl: the reader was disposed");
                return h;
            }
        }

        Chunk Take(int capacity)
        {
            for (int i = free.Count - 1; i >= 0; i--)
            {
                var c = free[i];
                if (c.Capacity >= capacity)
                {
                    free.RemoveAt(i);
                    return c;
                }
            }
            return new Chunk
            {
                Mem = (NativeRecord*)Marshal.AllocHGlobal(checked(capacity * sizeof(NativeRecord))),
                Capacity = capacity,
            };
        }

        internal static long Nanoseconds(TimeSpan t)
        {
            if (t < TimeSpan.Zero) return -1;  // Timeout.InfiniteTimeSpan and any negative: forever
            const long max = long.MaxValue / 100;
            return t.Ticks > max ? long.MaxValue : t.Ticks * 100;
        }

        // Detaches and unmaps: every record view of this reader ends here.
        public void Dispose()
        {
            Close(true);
            GC.SuppressFinalize(this);
        }

        void Close(bool disposing)
        {
            var h = handle;
            if (h == IntPtr.Zero) return;
            handle = IntPtr.Zero;
            validFrom = long.MaxValue;
            Native.shmrepl_reader_close(h);
            foreach (var c in free) Marshal.FreeHGlobal((IntPtr)c.Mem);
            foreach (var c in inUse) Marshal.FreeHGlobal((IntPtr)c.Mem);
            if (disposing)
            {
                free.Clear();
                inUse.Clear();
            }
        }
    }
}
