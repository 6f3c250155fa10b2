"""Formats the callback CPU comparison for BENCHMARKS.md: criterion's output for wxpush (read
from stdin) against wechatpy's time on the same inputs (argv[1], microseconds), with the
stages of wxpush's path.

  cargo bench -p wxpush-shared --bench callback | python scripts/bench_callback_cpu.py 72.6
"""
import re
import sys

peer_us = float(sys.argv[1])
text = sys.stdin.read()
units = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3}
rows = []
for name, mid, unit in re.findall(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text, re.M):
    rows.append((name, float(mid) * units[unit]))
whole = dict(rows).get("safe_mode_2kb_verify_decrypt_parse")
print("| path | time per message | vs wechatpy |")
print("|---|---|---|")
print(f"| wechatpy 1.8.18 (`check_signature` + `decrypt_message` + `parse_message`, best of 5 `timeit`) | {peer_us:.1f} µs | 1× |")
if whole:
    print(f"| **wxpush** (both signatures + decrypt + parse, criterion) | **{whole:.2f} µs** | **{peer_us / whole:.1f}×** |")
print()
print("Where wxpush's time goes (each stage alone, criterion):")
print()
print("| stage | time |")
print("|---|---|")
for name, t in rows:
    if name.startswith("stage/"):
        print(f"| {name[6:]} | {t:.2f} µs |")
