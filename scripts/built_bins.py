#!/usr/bin/env python3
"""Prints `export NAME=PATH` lines for binaries a `cargo ... --message-format=json` build made
(its non-test executables), for a shell to `eval`; exits 1 naming any binary it did not find.

usage: built_bins.py ARTIFACTS.json NAME=binary...
"""
import json
import shlex
import sys


def executables(artifacts_path):
    found = {}
    with open(artifacts_path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
                continue
            if msg.get("profile", {}).get("test") or "bin" not in msg["target"]["kind"]:
                continue
            found[msg["target"]["name"]] = msg["executable"]
    return found


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    found = executables(sys.argv[1])
    missing = []
    for pair in sys.argv[2:]:
        name, _, binary = pair.partition("=")
        if binary in found:
            print(f"export {name}={shlex.quote(found[binary])}")
        else:
            missing.append(binary)
    if missing:
        print(f"built_bins.py: the build made no {', '.join(missing)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
