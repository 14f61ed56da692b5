"""Conformance: the shared execution vectors (tests/vectors/executions.json) through a
real engine: bytes per stream, kinds in order, seq gap-free from 0, execution ids, the
client id in STARTED, the finish status, exit code and signal."""
import json
import unittest

import support
import shmrepl

REAL = support.REPO / "tests" / "vectors" / "executions.json"
LOCAL = support.HERE / "executions_local.json"  # two of them, for runs outside a checkout


def load_vectors():
    in_checkout = (support.REPO / "abi" / "include" / "shmrepl" / "shmrepl.h").is_file()
    path = REAL if in_checkout else LOCAL  # in a checkout the shared file must be there
    return path, json.loads(path.read_text())["executions"]


class Vectors(support.EngineCase):
    def test_vectors(self):
        path, vectors = load_vectors()
        self.assertGreaterEqual(len(vectors), 2, path)
        names = [v["name"] for v in vectors]
        self.assertEqual(len(names), len(set(names)), "vector names must be unique")
        for v in vectors:
            with self.subTest(vector=v["name"], file=str(path)):
                self.check(v)

    def check(self, v):
        # A fresh session per vector, as the vectors' _comment says.
        with self.client.open_session() as session, \
                session.execute(v["code"], client_execution_id=v["client_execution_id"],
                                script=v.get("script", False),
                                ring_capacity=v.get("ring_capacity", 0)) as ex, \
                ex.reader() as r:
            streams = {shmrepl.Stream.STDOUT: bytearray(), shmrepl.Stream.STDERR: bytearray()}
            kinds, seqs, finished, more = [], [], None, False
            for batch in r.batches(timeout=60):
                for rec in batch:
                    kinds.append(rec.kind.name)
                    seqs.append(rec.seq)
                    self.assertEqual(rec.execution_id, ex.id)
                    if rec.kind is shmrepl.RecordKind.STARTED:
                        self.assertEqual(bytes(rec.data), v["client_execution_id"].encode())
                    elif rec.kind is shmrepl.RecordKind.OUTPUT:
                        self.assertIn(rec.stream, streams)
                        streams[rec.stream] += rec.data
                        # A split write: CONTINUED exactly after a part flagged MORE.
                        self.assertEqual(rec.continued, more, rec.seq)
                        more = rec.more
                    elif rec.kind is shmrepl.RecordKind.FINISHED:
                        finished = (rec.finish_status.name, rec.exit_code, rec.signal)
            self.assertEqual(r.execution_id, ex.id)
        self.assertEqual(bytes(streams[shmrepl.Stream.STDOUT]), v["stdout"].encode())
        self.assertEqual(bytes(streams[shmrepl.Stream.STDERR]), v["stderr"].encode())
        self.assertEqual(kinds, v["kinds"])
        self.assertEqual(seqs, list(range(len(seqs))))
        # A vector's "signal" is the one that ends the worker; none of them: 0.
        self.assertEqual(finished, (v["finish_status"], v["exit_code"], v.get("signal", 0)))


if __name__ == "__main__":
    unittest.main()
