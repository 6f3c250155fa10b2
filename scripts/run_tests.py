#!/usr/bin/env python3
"""Runs the test binaries `cargo test --workspace --no-run --message-format=json` built, as
`cargo test` would (each from its package's directory), in two groups at once: the long
storms named on the command line (mostly waiting on timeouts and backoffs) beside everything
else. The rest streams to stdout; the storms' output follows when they end. Exits 1 when any
binary failed (a failing test, a crash, a non-zero exit).

usage: run_tests.py ARTIFACTS.json HEAVY_TEST_NAME...
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
    artifacts, heavy_names = sys.argv[1], set(sys.argv[2:])
    all_binaries = binaries(artifacts)
    heavy = [b for b in all_binaries if b["kind"] == ["test"] and b["name"] in heavy_names]
    rest = [b for b in all_binaries if b not in heavy]
    missing = heavy_names - {b["name"] for b in heavy}
    if missing:
        print(f"no test binary named {sorted(missing)}")
        return 1
    failed = []
    heavy_log = []

    class Collect:
        def write(self, text):
            heavy_log.append(text)

        def flush(self):
            pass

    def run_heavy():
        for b in heavy:
            if run(b, Collect()) != 0:
                failed.append(b["name"])

    thread = threading.Thread(target=run_heavy)
    thread.start()
    for b in rest:
        if run(b, sys.stdout) != 0:
            failed.append(b["name"])
    thread.join()
    sys.stdout.write("".join(heavy_log))
    if failed:
        print(f"test binaries that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
