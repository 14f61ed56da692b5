"""The ctypes mirrors of the ABI structs and constants against the 1.1 layout and header."""
import ctypes
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import support  # noqa: F401  (sets up the import path)
import shmrepl
from shmrepl import _lib, reader, errors, client


class StructLayout(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_record_t), 104)
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_reader_options_t), 8)
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_client_options_t), 40)  # 32 in 1.0
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_execute_options_t), 88)
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_bytes_t), 16)
        self.assertEqual(ctypes.sizeof(_lib.shmrepl_session_options_t), 48)

    def test_record_offsets(self):
        r = _lib.shmrepl_record_t
        want = {"kind": 0, "stream": 4, "flags": 8, "finish_status": 12, "execution_id": 16,
                "seq": 24, "timestamp_ns": 32, "data": 40, "data_len": 48, "raw": 56,
                "raw_len": 64, "exit_code": 72, "duration_ns": 80, "reserved": 88}
        self.assertEqual({f: getattr(r, f).offset for f in want}, want)

    def test_option_offsets(self):
        c = _lib.shmrepl_client_options_t
        self.assertEqual([c.struct_size.offset, c.autostart.offset, c.socket_path.offset,
                          c.engine_path.offset, c.connect_timeout_ns.offset,
                          c.request_timeout_ns.offset], [0, 4, 8, 16, 24, 32])
        e = _lib.shmrepl_execute_options_t
        self.assertEqual([e.struct_size.offset, e.script.offset, e.session_id.offset,
                          e.code.offset, e.code_len.offset, e.client_execution_id.offset,
                          e.filename.offset, e.argv.offset, e.argc.offset,
                          e.ring_capacity.offset, e.timeout_ns.offset, e.memory_limit.offset],
                         [0, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80])
        # The 1.0 size the library still accepts is where the limits begin.
        self.assertEqual(e.timeout_ns.offset, 72)
        self.assertLess(e(timeout_ns=-1).timeout_ns, 0)  # int64_t: signed
        self.assertEqual(e(memory_limit=2**64 - 1).memory_limit, 2**64 - 1)
        o = _lib.shmrepl_reader_options_t
        self.assertEqual([o.struct_size.offset, o.start.offset], [0, 4])
        b = _lib.shmrepl_bytes_t
        self.assertEqual([b.ptr.offset, b.len.offset], [0, 8])
        s = _lib.shmrepl_session_options_t
        self.assertEqual([(name, getattr(s, name).offset) for name, _ in s._fields_],
                         [("struct_size", 0), ("flags", 4), ("working_dir", 8), ("env", 16),
                          ("envc", 24), ("stdin_fd_plus_one", 32), ("reserved", 36),
                          ("stdout_fd_plus_one", 40), ("stderr_fd_plus_one", 44)])
        self.assertEqual([(name, ctypes.sizeof(t)) for name, t in s._fields_],
                         [("struct_size", 4), ("flags", 4), ("working_dir", 8), ("env", 8),
                          ("envc", 8), ("stdin_fd_plus_one", 4), ("reserved", 4),
                          ("stdout_fd_plus_one", 4), ("stderr_fd_plus_one", 4)])
        self.assertEqual(ctypes.sizeof(s), 48)
        self.assertEqual(s.stdin_fd_plus_one.size, 4)
        self.assertLess(s(stdin_fd_plus_one=-1).stdin_fd_plus_one, 0)  # int32_t: signed

    def test_session_options_from_the_binding(self):
        # What Client.open_session passes: the size, the strings, NULL for "the engine's".
        opts, keep = client._session_options("/w", {"A": "1", "B": "x=y"}, 4)
        self.assertEqual((opts.struct_size, opts.flags, opts.reserved), (48, 0, 0))
        self.assertEqual((opts.stdout_fd_plus_one, opts.stderr_fd_plus_one), (0, 0))
        self.assertEqual(opts.working_dir, b"/w")
        self.assertEqual(opts.envc, 2)
        self.assertEqual([opts.env[i] for i in range(2)], [b"A=1", b"B=x=y"])
        self.assertEqual(opts.stdin_fd_plus_one, 5)
        opts, keep = client._session_options(None, {}, None)
        self.assertIsNone(opts.working_dir)
        self.assertTrue(opts.env)  # an empty environment is not NULL (the engine's)
        self.assertEqual((opts.envc, opts.stdin_fd_plus_one), (0, 0))
        opts, keep = client._session_options(None, None, None)
        self.assertFalse(opts.env)

    def test_execute_limits_from_the_binding(self):
        # What ClientSession.execute puts in timeout_ns and memory_limit.
        lim = client._execute_limits
        self.assertEqual(lim(None, None), (0, 0))
        self.assertEqual(lim(0.3, None), (300_000_000, 0))
        self.assertEqual(lim(2, 64 << 20), (2_000_000_000, 64 << 20))
        self.assertEqual(lim(datetime.timedelta(milliseconds=300), None), (300_000_000, 0))
        self.assertEqual(lim(datetime.timedelta(days=1, microseconds=1), None),
                         ((86400 * 10**6 + 1) * 1000, 0))
        self.assertEqual(lim(1e-12, 2**64 - 1), (1, 2**64 - 1))  # a tiny timeout stays one
        for bad in ((0, None), (-0.5, None), (datetime.timedelta(seconds=-1), None),
                    (2**63 / 1e9, None), (None, 0), (None, 2**64), (None, "1")):
            with self.subTest(bad=bad), self.assertRaises(errors.InvalidArgument):
                lim(*bad)

    def test_unpack_format_matches_ctypes(self):
        # The fast field reader (struct) against the ctypes mirror, field by field.
        rec = _lib.shmrepl_record_t(kind=6, stream=2, flags=3, finish_status=4, execution_id=5,
                                    seq=7, timestamp_ns=8, data=9, data_len=10, raw=11,
                                    raw_len=12, exit_code=-13, duration_ns=14)
        rec.reserved[0], rec.reserved[1] = 15, 16
        fields = reader._REC.unpack(bytes(rec))
        self.assertEqual(fields, (6, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, -13, 14, 15, 16))
        b = reader.Batch(None, bytes(rec) * 2, 2)
        self.assertEqual(b.data_lens(), [10, 10])
        self.assertEqual(b[1].exit_code, -13)
        self.assertEqual(b[1].signal, 15)  # FINISHED: reserved[0]
        self.assertIs(b[0].kind, shmrepl.RecordKind.FINISHED)
        self.assertIs(b[0].finish_status, shmrepl.FinishStatus.ABORTED)

    def test_unknown_enum_values_map_to_unknown(self):
        rec = _lib.shmrepl_record_t(kind=77, stream=9, finish_status=200)
        r = reader.Batch(None, bytes(rec), 1)[0]
        self.assertIs(r.kind, shmrepl.RecordKind.UNKNOWN)
        self.assertEqual(r.kind_value, 77)
        self.assertIs(r.stream, shmrepl.Stream.UNKNOWN)
        self.assertIs(r.finish_status, shmrepl.FinishStatus.UNKNOWN)
        self.assertEqual(r.finish_status_value, 200)
        self.assertIsNone(r.signal)  # reserved[0] is a signal in FINISHED records only


class HeaderConstants(unittest.TestCase):
    """Every status code and enum value of the header, as the binding spells it."""

    header = support.REPO / "abi" / "include" / "shmrepl" / "shmrepl.h"

    @unittest.skipUnless(header.is_file(), "needs the checkout's header")
    def test_status_codes(self):
        text = self.header.read_text()
        codes = {m[1]: int(m[2]) for m in re.finditer(
            r"#define SHMREPL_(OK|E_[A-Z_]+)\s+\(?(-?\d+)\)?", text)}
        self.assertGreaterEqual(len(codes), 20)
        self.assertEqual(codes["E_SESSION_DIED"], -18)
        self.assertIs(errors._BY_STATUS[-18], shmrepl.SessionDied)
        self.assertTrue(issubclass(shmrepl.SessionDied, shmrepl.ShmreplError))
        for name, value in codes.items():
            self.assertEqual(getattr(_lib, name), value, name)
            if name not in ("OK", "E_EOF"):
                self.assertIn(value, errors._BY_STATUS, name)
        # Each error class carries its status.
        for status, cls in errors._BY_STATUS.items():
            e = cls(status, "detail", "call")
            self.assertEqual((e.status, e.detail), (status, "detail"))
            self.assertIn("detail", str(e))
        unknown = errors.error_for(-1000, "x")
        self.assertIs(type(unknown), shmrepl.ShmreplError)

    @unittest.skipUnless(header.is_file(), "needs the checkout's header")
    def test_session_options_fields(self):
        text = self.header.read_text()
        body = re.search(r"typedef struct shmrepl_session_options \{(.*?)\}", text, re.S)[1]
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        names = re.findall(r"(\w+);", body)
        self.assertEqual(names, [n for n, _ in _lib.shmrepl_session_options_t._fields_])
        self.assertIn("shmrepl_session_open_ex", text)
        self.assertTrue(_lib.has_session_open_ex)

    @unittest.skipUnless(header.is_file(), "needs the checkout's header")
    def test_execute_options_fields(self):
        text = self.header.read_text()
        body = re.search(r"typedef struct shmrepl_execute_options \{(.*?)\} shmrepl_execute", text,
                         re.S)[1]
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        names = re.findall(r"(\w+);", body)
        self.assertEqual(names, [n for n, _ in _lib.shmrepl_execute_options_t._fields_])
        self.assertEqual(names[-2:], ["timeout_ns", "memory_limit"])

    @unittest.skipUnless(header.is_file() and shutil.which("cc"), "needs the header and cc")
    def test_execute_options_against_the_compiler(self):
        # The C compiler's sizeof/offsetof of the header's struct, against the ctypes mirror.
        e = _lib.shmrepl_execute_options_t
        src = ("#include <stddef.h>\n#include <stdio.h>\n#include <shmrepl/shmrepl.h>\n"
               "int main(void) { printf(\"%zu\", sizeof(shmrepl_execute_options_t));\n"
               + "".join(f'  printf(" %zu", offsetof(shmrepl_execute_options_t, {n}));\n'
                         for n, _ in e._fields_) + "  return 0; }\n")
        with tempfile.TemporaryDirectory(prefix="shmrepl-py-layout-") as d:
            c, exe = os.path.join(d, "t.c"), os.path.join(d, "t")
            with open(c, "w") as f:
                f.write(src)
            subprocess.run(["cc", "-std=c11", "-I", str(self.header.parents[1]), "-o", exe, c],
                           check=True, capture_output=True, timeout=60)
            got = [int(x) for x in subprocess.run([exe], check=True, capture_output=True,
                                                  text=True).stdout.split()]
        self.assertEqual(got, [ctypes.sizeof(e)] + [getattr(e, n).offset for n, _ in e._fields_])
        self.assertEqual(got[0], 88)
        self.assertEqual(got[-2:], [72, 80])

    @unittest.skipUnless(header.is_file(), "needs the checkout's header")
    def test_enums(self):
        text = self.header.read_text()
        vals = {m[1]: int(m[2], 0) for m in re.finditer(
            r"SHMREPL_((?:RECORD|STREAM|FINISH|START|AUTOSTART|FLAG)_[A-Z_]+)\s*=?\s*\(?(0x[0-9a-f]+|\d+)u?", text)}
        for k in shmrepl.RecordKind:
            self.assertEqual(vals["RECORD_" + k.name], k.value)
        for s in shmrepl.Stream:
            if s is not shmrepl.Stream.UNKNOWN:
                self.assertEqual(vals["STREAM_" + s.name], s.value)
        for s in shmrepl.FinishStatus:
            if s is not shmrepl.FinishStatus.UNKNOWN:
                self.assertEqual(vals["FINISH_" + s.name], s.value)
        self.assertEqual({k for k in vals if k.startswith("FINISH_")},
                         {"FINISH_" + s.name for s in shmrepl.FinishStatus} - {"FINISH_UNKNOWN"})
        self.assertEqual((vals["FINISH_TIMEOUT"], vals["FINISH_MEMORY_LIMIT"]), (5, 6))
        for s in shmrepl.Start:
            self.assertEqual(vals["START_" + s.name], s.value)
        for n in ("AUTOSTART_DEFAULT", "AUTOSTART_ON", "AUTOSTART_OFF", "FLAG_MORE",
                  "FLAG_CONTINUED", "FLAG_PASSWORD"):
            self.assertEqual(vals[n], getattr(_lib, n), n)
        for t in shmrepl.MessageType:
            self.assertEqual(vals["RECORD_" + t.name], t.value)


class Loading(unittest.TestCase):
    def test_abi_version(self):
        self.assertEqual(shmrepl.abi_version(), 1)
        self.assertRegex(shmrepl.version(), r"^\d+\.\d+\.\d+$")

    def _import_with(self, env):
        env = dict(os.environ, **env)
        code = "import shmrepl; print(shmrepl.library_path)"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, cwd=str(support.HERE))

    def test_shmrepl_library_wins(self):
        p = self._import_with({"SHMREPL_LIBRARY": shmrepl.library_path,
                               "PYTHONPATH": str(support.HERE.parent)})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), shmrepl.library_path)

    def test_bad_library_fails_clearly(self):
        p = self._import_with({"SHMREPL_LIBRARY": "/nonexistent/libshmrepl.so",
                               "PYTHONPATH": str(support.HERE.parent)})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("LibraryError", p.stderr)
        self.assertIn("/nonexistent/libshmrepl.so", p.stderr)

    def test_not_a_shmrepl_library(self):
        libc = ctypes.util.find_library("c")
        p = self._import_with({"SHMREPL_LIBRARY": libc, "PYTHONPATH": str(support.HERE.parent)})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("LibraryError", p.stderr)


if __name__ == "__main__":
    unittest.main()
