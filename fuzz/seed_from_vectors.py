#!/usr/bin/python3
"""Copies the record conformance vectors (tests/vectors/records.json), valid and
corrupt, into the fuzz_record corpus as v_<name> files (the raw payload bytes).
Usage: /usr/bin/python3 fuzz/seed_from_vectors.py [repo root]"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
vectors = json.loads((root / "tests/vectors/records.json").read_text())["vectors"]
out = root / "fuzz/corpus/fuzz_record"
out.mkdir(parents=True, exist_ok=True)
for v in vectors:
    path = out / ("v_" + v["name"])
    path.write_bytes(bytes.fromhex(v["encoded_hex"]))
    print(f"{path} ({len(v['encoded_hex']) // 2} bytes, expect {v['expect']})")
