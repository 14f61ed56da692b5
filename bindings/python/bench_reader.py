#!/usr/bin/env python3
"""Reads a ring with the Python binding's batch API, for the bindings benchmark.

    bench_reader.py RING [--variant records|lens|ctypes]

Attaches to RING (START_OLDEST), reads every record to E_EOF in batches of up to 256
(released after use), sums data_len, and prints
    records=<N> bytes=<sum of data_len> seconds=<from attach to EOF>
--variant picks how data_len is read (for measuring; the default is the fastest):
  lens     Batch.data_lens(): struct.iter_unpack over the batch's copy of the array
  records  Record objects (for rec in batch: rec.data_len)
  ctypes   ctypes attribute access on the reader's shmrepl_record_t array
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shmrepl  # noqa: E402
from shmrepl import _lib  # noqa: E402


def read_lens(reader):
    records = total = 0
    next_batch = reader.next_batch
    while True:
        b = next_batch(256)
        if b is None:
            return records, total
        records += len(b)
        total += sum(b.data_lens())
        b.release()


def read_records(reader):
    records = total = 0
    next_batch = reader.next_batch
    while True:
        b = next_batch(256)
        if b is None:
            return records, total
        for rec in b:
            total += rec.data_len
            records += 1
        b.release()


def read_ctypes(reader):
    # The C calls straight on the reader's handle and array, fields by ctypes attributes.
    import ctypes
    lib = _lib.lib
    h = reader._h
    arr = (_lib.shmrepl_record_t * 256)()
    n = ctypes.c_size_t()
    nref = ctypes.byref(n)
    records = total = 0
    while True:
        st = lib.shmrepl_reader_next_batch(h, arr, 256, nref, -1)
        if st == _lib.E_EOF:
            return records, total
        if st:
            raise shmrepl.errors.error_for(st, "shmrepl_reader_next_batch")
        k = n.value
        for i in range(k):
            total += arr[i].data_len
        records += k
        st = lib.shmrepl_reader_release(h, k)
        if st:
            raise shmrepl.errors.error_for(st, "shmrepl_reader_release")


VARIANTS = {"lens": read_lens, "records": read_records, "ctypes": read_ctypes}


def main(argv):
    variant = "lens"
    args = list(argv[1:])
    if "--variant" in args:
        i = args.index("--variant")
        variant = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or variant not in VARIANTS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        t0 = time.perf_counter()
        with shmrepl.Reader(args[0], shmrepl.OLDEST) as reader:
            records, total = VARIANTS[variant](reader)
        seconds = time.perf_counter() - t0
    except shmrepl.ShmreplError as e:
        print(f"bench_reader: {e}", file=sys.stderr)
        return 1
    print(f"records={records} bytes={total} seconds={seconds:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
