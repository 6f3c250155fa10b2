#!/usr/bin/env python3
"""The repository's shape, checked in a second (scripts/test runs it first):

- no Rust file over MAX_LINES lines (functions are held to 80 by clippy's too_many_lines);
- nothing refers to a path outside the repository (`../shared/...`), and no comment cites a
  document the repository does not hold (`facts.md`, `api.md`: their rules are in docs/);
- ARCHITECTURE.md names every Rust source file, and names none that is gone.
"""
import re
import subprocess
import sys
from pathlib import Path

MAX_LINES = 500
ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"\.\./shared|\bfacts\.md\b")
# `api.md` beside the pages of docs/ is docs/api.md; anywhere else it must say docs/api.md.
BARE_API_MD = re.compile(r"(?<![\w/])api\.md\b")


def tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return [p for p in out.splitlines() if (ROOT / p).is_file()]


def main() -> int:
    files = tracked()
    problems = []
    rust = [p for p in files if p.endswith(".rs")]
    for path in rust:
        lines = (ROOT / path).read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES:
            problems.append(f"{path}: {lines} lines (at most {MAX_LINES})")
    for path in files:
        if not path.endswith((".rs", ".md", ".yaml", ".toml", ".py", ".sh")) and "/" in path \
                and not path.startswith(("scripts/", ".ci/")):
            continue
        if path == "scripts/check_shape.py":
            continue
        text = (ROOT / path).read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or (not path.startswith("docs/") and BARE_API_MD.search(line)):
                problems.append(f"{path}:{n}: cites a document outside the repository: {line.strip()}")
    arch = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w./-]+\.rs)`", arch))
    for path in rust:
        if path not in named:
            problems.append(f"ARCHITECTURE.md does not name {path}")
    for path in sorted(named - set(rust)):
        problems.append(f"ARCHITECTURE.md names {path}, which is not in the tree")
    for p in problems:
        print(p)
    if problems:
        print(f"shape check: {len(problems)} problem(s)")
        return 1
    print(f"shape check: {len(rust)} Rust files, none over {MAX_LINES} lines; ARCHITECTURE.md names each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
