#!/usr/bin/env python3
"""Runs the test binaries `cargo test --workspace --no-run --message-format=json` built, as
`cargo test` would (each from its package's directory), in lanes at once: each LANE argument
is a comma-separated list of binaries run one after another beside the others (the long
ones, mostly waiting on timeouts and backoffs), and every other binary runs in one more lane
that streams to stdout. The named lanes' output follows when they end. Exits 1 when any
binary failed (a failing test, a crash, a non-zero exit).

usage: run_tests.py ARTIFACTS.json LANE...   (LANE: NAME[,NAME...])
"""
import json
import os
import subprocess
import sys
import threading


def binaries(artifacts_path):
    found = []
    with open(artifacts_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
                continue
            if not msg.get("profile", {}).get("test"):
                continue
            target = msg["target"]
            found.append(
                {
                    "name": target["name"],
                    "kind": target["kind"],
                    "exe": msg["executable"],
                    "cwd": os.path.dirname(msg["manifest_path"]),
                }
            )
    return found


def run(binary, out):
    out.write(f"     Running {binary['name']} ({os.path.relpath(binary['exe'])})\n")
    out.flush()
    proc = subprocess.run(
        [binary["exe"]],
        cwd=binary["cwd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    out.write(proc.stdout)
    out.flush()
    return proc.returncode


def main():
    artifacts = sys.argv[1]
    lanes_named = [[n for n in arg.split(",") if n] for arg in sys.argv[2:]]
    all_binaries = binaries(artifacts)
    by_name = {b["name"]: b for b in all_binaries if b["kind"] == ["test"]}
    missing = [n for lane in lanes_named for n in lane if n not in by_name]
    if missing:
        print(f"no test binary named {sorted(missing)}")
        return 1
    lanes = [[by_name[n] for n in lane] for lane in lanes_named]
    named = [b for lane in lanes for b in lane]
    rest = [b for b in all_binaries if b not in named]
    failed = []
    logs = [[] for _ in lanes]

    class Collect:
        def __init__(self, log):
            self.log = log

        def write(self, text):
            self.log.append(text)

        def flush(self):
            pass

    def run_lane(lane, log):
        for b in lane:
            if run(b, Collect(log)) != 0:
                failed.append(b["name"])

    threads = [threading.Thread(target=run_lane, args=(lane, log)) for lane, log in zip(lanes, logs)]
    for t in threads:
        t.start()
    for b in rest:
        if run(b, sys.stdout) != 0:
            failed.append(b["name"])
    for t in threads:
        t.join()
    for log in logs:
        sys.stdout.write("".join(log))
    if failed:
        print(f"test binaries that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
