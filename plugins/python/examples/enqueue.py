"""Adds jobs to the consumer's queue: one per argument, or one per line
of standard input.

    python3 enqueue.py queue.db "some text" "more text"
"""

import sys

from consumer import open_queue


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: enqueue.py DB [TEXT...]")
    db = open_queue(argv[1])
    texts = argv[2:] or [line.rstrip("\n") for line in sys.stdin]
    db.execute("BEGIN")
    db.executemany("INSERT INTO jobs (payload) VALUES (?)",
                   [(t,) for t in texts])
    db.execute("COMMIT")
    print("queued %d jobs" % len(texts))


if __name__ == "__main__":
    main(sys.argv)
