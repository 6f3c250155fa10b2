#!/usr/bin/env python3
"""After the suite: no secret any test handed to wxpush or the emulator issued (AppSecrets,
callback tokens, EncodingAESKeys, access tokens, session keys, the local API key) appears in
any log line the suite wrote. Reads target/test-logs/secrets-*.txt and *.log; prints counts,
never a secret; exits 1 on a leak."""
import glob
import os
import re
import sys

# Secrets are runs of these characters; a log line holds them as whole runs (JSON strings,
# query values), so comparing runs against the set finds them in one pass over the text.
RUN = re.compile(r"[A-Za-z0-9_\-]{8,}")

root = sys.argv[1] if len(sys.argv) > 1 else "target/test-logs"
secrets = set()
for ledger in glob.glob(os.path.join(root, "secrets-*.txt")):
    with open(ledger, encoding="utf-8", errors="replace") as f:
        # Short values (e.g. "s", "tok") would match by chance; every real one is longer.
        secrets.update(s.strip() for s in f if len(s.strip()) >= 8)
logs = glob.glob(os.path.join(root, "*.log"))
lines = 0
leaks = {}
for path in logs:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines += text.count("\n")
    found = secrets.intersection(RUN.findall(text))
    if found:
        leaks[os.path.basename(path)] = len(found)
print(f"log check: {len(logs)} log files, {lines} lines, {len(secrets)} secrets, {sum(leaks.values())} leaks")
if not logs or lines == 0 or not secrets:
    print("log check: nothing was logged or no secret recorded; the check proves nothing")
    sys.exit(1)
for name, n in sorted(leaks.items()):
    print(f"  {name}: {n} secret(s) found (values not shown)")
sys.exit(1 if leaks else 0)
