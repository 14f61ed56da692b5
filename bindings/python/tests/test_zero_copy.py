"""Record views are zero-copy, read-only views into the reader's mapping, and end (raise,
never crash) when released."""
import ctypes
import gc
import unittest

import support
import shmrepl

CODE = ("import sys\n"
        "for i in range(300):\n"
        "    print(f'line {i} ' + 'y' * (i % 50))\n"
        "sys.stdout.buffer.write(bytes(range(256)))\n"
        "raise KeyError('k')\n")


def view_address(view):
    """The address a memoryview handed out by the binding reads: a view of a ctypes array
    placed with from_address."""
    arr = view.obj
    assert isinstance(arr, ctypes.Array), type(arr)
    return ctypes.addressof(arr)


def maps_entry(address):
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""
    return None


class ZeroCopy(support.EngineCase):
    def setUp(self):
        # A session of each test's own: some end it to see the mapping go.
        self.session = self.client.open_session()
        self.addCleanup(self.session.close)
        self.ex = self.session.execute(CODE)
        self.addCleanup(self.ex.close)

    def test_views_lie_in_the_mapping(self):
        with self.ex.reader() as r:
            base, length = r.mapping()
            self.assertGreater(length, 0)
            n = 0
            for batch in r.batches(timeout=30):
                for rec in batch:
                    for view, ln in ((rec.data, rec.data_len), (rec.raw, rec.raw_len)):
                        self.assertTrue(view.readonly)
                        self.assertEqual(view.nbytes, ln)
                        self.assertEqual(view.format, "B")
                        if ln:
                            a = view_address(view)
                            self.assertGreaterEqual(a, base)
                            self.assertLessEqual(a + ln, base + length)
                    if rec.data_len:
                        self.assertEqual(view_address(rec.data), rec.data_address)
                    n += 1
            self.assertGreater(n, 300)

    def test_mapping_matches_proc_self_maps(self):
        with self.ex.reader() as r:
            base, length = r.mapping()
            rec = r.next(timeout=30)
            while rec.data_len == 0:
                rec = r.next(timeout=30)
            entry = maps_entry(base)
            self.assertIsNotNone(entry)
            lo, hi, perms, path = entry
            self.assertEqual(lo, base)
            self.assertTrue(perms.startswith("rw") and perms.endswith("s"))
            # The ring's memfd: its label is the name it was created with (a ring a
            # session reuses keeps it), with the same random part.
            self.assertTrue(path.startswith("/memfd:shmrepl.") and path.endswith(
                "." + self.ex.ring_name.rsplit(".", 1)[1] + " (deleted)"), path)
            # End to end to the range's end: the data area is mapped read-only.
            while hi < base + length:
                nxt = maps_entry(hi)
                self.assertIsNotNone(nxt)
                self.assertEqual(nxt[3], path)
                self.assertTrue(nxt[2].startswith("r-"), nxt)
                hi = nxt[1]
            self.assertEqual(maps_entry(view_address(rec.data))[3], path)
        # Closed: the mapping stays for the session's next reader (its ring is reset
        # for the next execution, not created again) and goes with the session.
        self.assertIsNotNone(maps_entry(base))
        self.ex.close()
        self.session.close()
        self.assertIsNone(maps_entry(base))

    def test_released_views_raise(self):
        with self.ex.reader() as r:
            batch = r.next_batch(256, timeout=30)
            rec = batch[0]
            view = rec.data
            self.assertEqual(bytes(view), b"")  # STARTED without a client id
            rec1 = batch[1] if len(batch) > 1 else None
            batch.release()
            with self.assertRaises(ValueError):
                bytes(view)
            with self.assertRaises(ValueError):
                view[0:1]
            with self.assertRaises(shmrepl.Closed):
                rec.data
            with self.assertRaises(shmrepl.Closed):
                rec.text
            if rec1 is not None:
                with self.assertRaises(shmrepl.Closed):
                    rec1.raw
            self.assertTrue(batch.released)
            batch.release()  # idempotent
            # A batch still held when the reader closes ends there too.
            batch2 = r.next_batch(4, timeout=30)
            v2 = batch2[0].data
            self.assertGreater(len(v2), 0)
        with self.assertRaises(ValueError):
            v2.tobytes()
        with self.assertRaises(shmrepl.Closed):
            batch2[0].data
        batch2.release()  # after close: nothing to do, no error

    def test_derived_view_keeps_mapping_until_gone(self):
        r = self.ex.reader()
        rec = r.next(timeout=30)
        while rec.data_len <= 4:
            rec = r.next(timeout=30)
        view = rec.data
        part = view[1:4]           # a slice shares the record's memory: it cannot be revoked
        expect = bytes(part)
        base, _ = r.mapping()
        r.close()
        with self.assertRaises(ValueError):
            bytes(view)
        # The reader keeps the ring mapped while the slice lives, even once its session
        # is gone: reading it cannot crash.
        self.ex.close()
        self.session.close()
        self.assertIsNotNone(maps_entry(base))
        self.assertEqual(bytes(part), expect)
        del part, view
        gc.collect()
        self.assertIsNone(maps_entry(base))

    def test_batches_release_in_order(self):
        with self.ex.reader() as r:
            b1 = r.next_batch(2, timeout=30)
            b2 = r.next_batch(2, timeout=30)
            n1, n2 = len(b1), len(b2)
            self.assertTrue(1 <= n1 <= 2 and 1 <= n2 <= 2)
            self.assertEqual(r.held, n1 + n2)
            with self.assertRaises(shmrepl.StateError):
                b2.release()
            self.assertEqual(r.held, n1 + n2)
            b1.release()
            self.assertEqual(r.held, n2)
            with b2:
                self.assertEqual(b2[0].seq, n1)
            self.assertEqual(r.held, 0)
            rec = r.next(timeout=30)
            self.assertEqual(rec.seq, n1 + n2)
            with self.assertRaises(shmrepl.InvalidArgument):
                r.release(2)
            r.release()
            self.assertEqual(r.held, 0)
            self.assertTrue(rec.released)

if __name__ == "__main__":
    unittest.main()
