using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Shmrepl.Interop;

namespace Shmrepl
{
    // shmrepl_record_kind_t. A kind newer than this binding keeps its number.
    public enum RecordKind : uint
    {
        Unknown = 0,
        Started = 1,
        Output = 2,
        Result = 3,
        Error = 4,
        InputRequest = 5,
        Finished = 6,
    }

    // shmrepl_stream_t.
    public enum StreamKind : uint
    {
        None = 0,
        Stdout = 1,
        Stderr = 2,
    }

    // shmrepl_finish_status_t (FINISHED records). A status newer than this binding keeps its number.
    public enum FinishStatus : uint
    {
        Ok = 0,
        Error = 1,
        Cancelled = 2,
        Exited = 3,
        Aborted = 4,    // the session's worker died: ExitCode, and Record.Signal
        Timeout = 5,    // its ExecuteOptions.Timeout passed (interrupted, or its worker killed 3 s later) (1.1)
        MemoryLimit = 6, // it ran out of its ExecuteOptions.MemoryLimit (MemoryError) (1.1)
    }

    [Flags]
    public enum RecordFlags : uint
    {
        None = 0,
        More = 0x1,       // a split write: more parts follow
        Continued = 0x2,  // a split write: continues the previous part
        Password = 0x4,   // INPUT_REQUEST of getpass(): do not echo the answer (1.2)
    }

    // The structured part of an ERROR record, copied out of the ring.
    public sealed class ErrorDetails
    {
        public string Name { get; }       // the exception type (ename)
        public string Message { get; }    // its message (evalue)
        public IReadOnlyList<string> Traceback { get; }

        internal ErrorDetails(string name, string message, string[] traceback)
        {
            Name = name;
            Message = message;
            Traceback = traceback;
        }
    }

    // One record: a view into the ring, valid until it is released (Reader.Release,
    // Batch.Dispose) or the reader is disposed. Every property checks that first and
    // throws ObjectDisposedException / InvalidOperationException instead of reading
    // freed memory. A span taken from Data must not be kept past the release either:
    // it is the ring's memory, which the producer reuses.
    public unsafe ref struct Record
    {
        readonly Reader reader;
        readonly NativeRecord* rec;
        readonly long ordinal;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal Record(Reader reader, NativeRecord* rec, long ordinal)
        {
            this.reader = reader;
            this.rec = rec;
            this.ordinal = ordinal;
        }

        // One compare on the fast path (small enough for Mono to inline); the throwing
        // part lives in Reader.ThrowNotHeld.
        NativeRecord* P
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get
            {
                var r = reader;
                if (r == null || ordinal < r.validFrom) Reader.ThrowNotHeld(r);
                return rec;
            }
        }

        public RecordKind Kind => (RecordKind)P->Kind;
        public StreamKind Stream => (StreamKind)P->Stream;
        public RecordFlags Flags => (RecordFlags)P->Flags;
        // INPUT_REQUEST: getpass() asks (RecordFlags.Password).
        public bool IsPassword => (Flags & RecordFlags.Password) != 0;
        public FinishStatus FinishStatus => (FinishStatus)P->FinishStatus;
        public ulong ExecutionId => P->ExecutionId;
        public ulong Seq => P->Seq;
        public ulong TimestampNs => P->TimestampNs;
        public long ExitCode => P->ExitCode;
        public ulong DurationNs => P->DurationNs;
        // FINISHED: the number of the signal that ended the session's worker process (0:
        // none), from reserved[0] (libshmrepl 1.1; 0 from a 1.0 engine).
        public int Signal => (int)P->Reserved0;

        // The payload (see shmrepl.h: output bytes, repr, error message, prompt, client id).
        public ReadOnlySpan<byte> Data
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get { var p = P; return new ReadOnlySpan<byte>(p->Data, Length(p->DataLen)); }
        }

        public int DataLength
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get { ulong n = (ulong)P->DataLen; return n <= int.MaxValue ? (int)n : Length((UIntPtr)n); }
        }

        // The address of Data in this process (for zero-copy checks).
        public IntPtr DataAddress => (IntPtr)P->Data;

        // The whole FlatBuffers record (abi/shmrepl.fbs), verified by the library.
        public ReadOnlySpan<byte> Raw
        {
            get { var p = P; return new ReadOnlySpan<byte>(p->Raw, Length(p->RawLen)); }
        }

        public IntPtr RawAddress => (IntPtr)P->Raw;

        // Data decoded as UTF-8 (a copy).
        public string Text => Utf8.Decode(Data);

        // ERROR records: the exception type name, message and traceback, copied. Throws
        // ShmreplException(Invalid) for other kinds.
        public ErrorDetails GetError()
        {
            var p = P;
            NativeBytes ename, evalue;
            UIntPtr n;
            Check.Ok(Native.shmrepl_record_error(p, &ename, &evalue, &n));
            var lines = new string[checked((int)(ulong)n)];
            for (int i = 0; i < lines.Length; i++)
            {
                NativeBytes line;
                Check.Ok(Native.shmrepl_record_traceback_line(p, (UIntPtr)(ulong)i, &line));
                lines[i] = Utf8.Decode(new ReadOnlySpan<byte>(line.Ptr, Length(line.Len)));
            }
            return new ErrorDetails(Utf8.Decode(new ReadOnlySpan<byte>(ename.Ptr, Length(ename.Len))),
                                    Utf8.Decode(new ReadOnlySpan<byte>(evalue.Ptr, Length(evalue.Len))), lines);
        }

        // Zero-copy views of the error parts (views into the ring like Data).
        public ReadOnlySpan<byte> ErrorName
        {
            get { var p = P; NativeBytes b; Check.Ok(Native.shmrepl_record_error(p, &b, null, null)); return new ReadOnlySpan<byte>(b.Ptr, Length(b.Len)); }
        }

        public ReadOnlySpan<byte> ErrorValue
        {
            get { var p = P; NativeBytes b; Check.Ok(Native.shmrepl_record_error(p, null, &b, null)); return new ReadOnlySpan<byte>(b.Ptr, Length(b.Len)); }
        }

        public int TracebackLineCount
        {
            get { var p = P; UIntPtr n; Check.Ok(Native.shmrepl_record_error(p, null, null, &n)); return checked((int)(ulong)n); }
        }

        public ReadOnlySpan<byte> TracebackLine(int index)
        {
            if (index < 0) throw new ArgumentOutOfRangeException(nameof(index));
            var p = P;
            NativeBytes b;
            Check.Ok(Native.shmrepl_record_traceback_line(p, (UIntPtr)(ulong)index, &b));
            return new ReadOnlySpan<byte>(b.Ptr, Length(b.Len));
        }

        public override string ToString()
        {
            var p = P;
            return "Record(" + (RecordKind)p->Kind + ", seq " + p->Seq + ", execution " + p->ExecutionId +
                   ", " + (ulong)p->DataLen + " bytes)";
        }

        static int Length(UIntPtr n)
        {
            ulong v = (ulong)n;
            if (v > int.MaxValue) throw new OverflowException("shmrepl: a view longer than 2 GiB");
            return (int)v;
        }
    }

    // The records that ONE shmrepl_reader_next_batch call returned, in a native array
    // owned by the reader. Dispose() releases them (and any earlier record still held:
    // records are released in order). Without C# 8's pattern-based using, call Dispose()
    // in a finally or release through Reader.Release.
    public unsafe ref struct Batch
    {
        readonly Reader reader;
        readonly NativeRecord* records;
        readonly int count;
        readonly long first;

        internal Batch(Reader reader, NativeRecord* records, int count, long first)
        {
            this.reader = reader;
            this.records = records;
            this.count = count;
            this.first = first;
        }

        public int Count => count;

        // True when the ring is finished and fully read (E_EOF): no records, stop reading.
        public bool IsEnd => count == 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Record Get(int index)
        {
            if ((uint)index >= (uint)count) throw new ArgumentOutOfRangeException(nameof(index));
            return new Record(reader, records + index, first + index);
        }

        public Enumerator GetEnumerator() => new Enumerator(this);

        public void Dispose()
        {
            if (reader != null && count > 0) reader.ReleaseThrough(first + count);
        }

        public ref struct Enumerator
        {
            readonly Batch batch;
            int index;

            internal Enumerator(Batch batch)
            {
                this.batch = batch;
                index = -1;
            }

            public bool MoveNext() => ++index < batch.count;
            public Record Current => batch.Get(index);
        }
    }

    // The address range of a reader's mapping of its ring: every view lies inside.
    public struct ReaderMapping
    {
        public IntPtr Base { get; }
        public ulong Length { get; }

        internal ReaderMapping(IntPtr b, ulong len)
        {
            Base = b;
            Length = len;
        }

        public bool Contains(IntPtr address, long length)
        {
            ulong a = (ulong)address.ToInt64(), b = (ulong)Base.ToInt64();
            return length >= 0 && a >= b && a - b <= Length && (ulong)length <= Length - (a - b);
        }

        public unsafe bool Contains(ReadOnlySpan<byte> view)
        {
            fixed (byte* p = &MemoryMarshal.GetReference(view))
                return Contains((IntPtr)p, view.Length);
        }
    }
}
