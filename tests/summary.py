#!/usr/bin/env python3
"""Sums the test cases of one or more meson test runs.

Each suite prints "SUMMARY passed=N failed=M skipped=K"; a suite that died
before printing it counts as one failure (or one pass if meson says OK).
Arguments are build dirs (their meson-logs/testlog.json is read) or files
holding a script's output (its last SUMMARY line counts).  Prints one line
per argument and, last, "N passed, N failed".
"""
import json
import os
import re
import sys

LINE = re.compile(r"^SUMMARY passed=(\d+) failed=(\d+) skipped=(\d+)", re.M)


def count(build):
    passed = failed = skipped = 0
    with open(build + "/meson-logs/testlog.json") as f:
        for raw in f:
            t = json.loads(raw)
            m = LINE.findall(t.get("stdout") or "")
            ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            if m:
                p, fl, s = (int(x) for x in m[-1])
                if not ok and fl == 0:
                    fl = 1      # e.g. a sanitizer report after the summary
                passed += p
                failed += fl
                skipped += s
            elif ok:
                passed += 1
            else:
                failed += 1
                print("  %s: %s (no summary)" % (t.get("name"),
                                                  t.get("result")))
    return passed, failed, skipped


def count_log(path):
    """A script's output: its last SUMMARY line, else one failure."""
    try:
        with open(path) as f:
            m = LINE.findall(f.read())
    except OSError:
        m = []
    if not m:
        return 0, 1, 0
    return tuple(int(x) for x in m[-1])


def main():
    tp = tf = 0
    for b in sys.argv[1:]:
        if os.path.isdir(b):
            p, f, s = count(b)
        else:
            p, f, s = count_log(b)
        print("%s: %d passed, %d failed, %d skipped" % (b, p, f, s))
        tp += p
        tf += f
    print("%d passed, %d failed" % (tp, tf))
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
