#!/usr/bin/env python3
"""The repository's shape, checked in a second (scripts/test runs it first):

- no Rust file over MAX_LINES lines (functions are held to 80 by clippy's too_many_lines);
- nothing refers to a path outside the repository (`../shared/...`), and no comment cites a
  document the repository does not hold (`facts.md`, `api.md`: their rules are in docs/);
- ARCHITECTURE.md names every Rust source file, and names none that is gone;
- no document, comment or script names a repository path that does not exist.
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


REPO_PATH = re.compile(
    r"(?<![\w./-])((?:shared|cli|functions|tests|scripts|docs|bench)/[\w./*-]*\w)"
)


def missing_paths(files: list[str]) -> list[str]:
    """Repository paths named in text files that are neither a file nor a folder here."""
    problems = []
    for path in files:
        if not path.endswith((".rs", ".md", ".yaml", ".py", ".toml")) and not path.startswith(
            ("scripts/", ".ci/")
        ):
            continue
        text = (ROOT / path).read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            for named in REPO_PATH.findall(line):
                named = named.rstrip(".")
                # A pattern (`tls_roots*.rs`) or a placeholder (`NAME.test.mjs`) names no file.
                if "*" in named or re.search(r"/[A-Z]+\.", named):
                    continue
                if not (ROOT / named).exists():
                    problems.append(f"{path}:{n}: names {named}, which is not in the repository")
    return problems


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
    named = set(re.findall(r"`((?:shared|cli|functions|tests)/[\w./-]+\.rs)`", arch))
    for path in rust:
        if path not in named:
            problems.append(f"ARCHITECTURE.md does not name {path}")
    for path in sorted(named - set(rust)):
        problems.append(f"ARCHITECTURE.md names {path}, which is not in the tree")
    problems += missing_paths(files)
    for p in problems:
        print(p)
    if problems:
        print(f"shape check: {len(problems)} problem(s)")
        return 1
    print(f"shape check: {len(rust)} Rust files, none over {MAX_LINES} lines; ARCHITECTURE.md names each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
