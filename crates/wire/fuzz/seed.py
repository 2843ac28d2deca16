#!/usr/bin/env python3
"""Seed every fuzz target's corpus with the real Node traffic in ../shared/captures.

Usage: python3 seed.py [CAPTURES_DIR]   (from crates/wire/fuzz; default ../../../../shared/captures)

Extracted: hex payloads (PUBLISH buffers, msgpack dumps), hexdump blocks (BSON documents of the
mongo captures) and JSON lines (cluster-protocol messages, decoded packets). Every seed goes to every
target: a decoder that rejects it costs libFuzzer one run, and one that accepts it starts from a
real message instead of from nothing.
"""
import hashlib
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
captures = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "captures"
targets = sorted(p.stem for p in (HERE / "fuzz_targets").glob("*.rs"))

HEX = re.compile(r"(?<![0-9A-Za-z])([0-9a-f]{8,})(?![0-9A-Za-z])")
DUMP = re.compile(r"^\s*([0-9a-f]{4})  ((?:[0-9a-f]{2} {1,2})+)")

seeds = set()
for path in sorted(captures.glob("*.txt")):
    dump = bytearray()
    for line in path.read_text(errors="replace").splitlines():
        m = DUMP.match(line)
        if m:
            if m.group(1) == "0000" and dump:
                seeds.add(bytes(dump))
                dump = bytearray()
            dump += bytes.fromhex(m.group(2).replace(" ", ""))
            continue
        if dump:
            seeds.add(bytes(dump))
            dump = bytearray()
        for h in HEX.findall(line):
            if len(h) % 2 == 0 and len(h) >= 16:
                seeds.add(bytes.fromhex(h))
        text = line.split("decoded:", 1)[-1].strip()
        if text[:1] in "{[":
            try:
                json.loads(text)
            except ValueError:
                continue
            seeds.add(text.encode())
    if dump:
        seeds.add(bytes(dump))

for t in targets:
    out = HERE / "corpus" / t
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (out / hashlib.sha1(s).hexdigest()).write_bytes(s)
print(f"{len(seeds)} seeds from {captures} into corpus/ of {len(targets)} targets")
