#!/usr/bin/env python3
"""embed_source.py IN OUT NAME - writes OUT, a C header defining
`static const char NAME[]` with IN's bytes: PHP source that the plugin
compiles at engine start, kept in the .so so that nothing is looked up on
disk at run time.  Every byte outside printable ASCII, and "?" (trigraphs),
is an octal escape."""
import sys


def main():
    src, out, name = sys.argv[1:4]
    with open(src, "rb") as f:
        data = f.read()
    lines = ["/* Generated from %s by embed_source.py; do not edit. */" %
             src.rsplit("/", 1)[-1],
             "static const char %s[] =" % name]
    for line in data.split(b"\n"):
        esc = "".join(
            "\\\\" if c == 0x5c else '\\"' if c == 0x22 else
            "\\077" if c == 0x3f else      # no "??" trigraph in C
            chr(c) if 0x20 <= c < 0x7f else "\\%03o" % c
            for c in line + b"\n")
        lines.append('\t"%s"' % esc)
    lines[-1] += ";"
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
