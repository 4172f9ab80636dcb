"""A queue consumer as a pmhost task.

Jobs wait in a SQLite table; each work() call claims up to params["batch"]
of them, handles each (here: the SHA-256 of its text) and marks it done.
An empty queue ends the call at once: pmhost calls again after
executeUSleep, so an idle consumer costs one query per period.

A claim is an UPDATE in one write transaction, so two workers never take
the same job.  A worker that dies holding jobs leaves them claimed; any
worker gives them back to the queue once their lease has run out, so
every job is handled at least once.

Add jobs with enqueue.py.
"""

import hashlib
import logging
import os
import sqlite3
import time

log = logging.getLogger("consumer")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id         INTEGER PRIMARY KEY,
    payload    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'new',  -- new, taken, done
    taken_at   REAL,
    worker     INTEGER,                      -- pid of the last taker
    result     TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
"""


def open_queue(path):
    """The queue database, created if need be (WAL: readers do not block
    the writer)."""
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    return db


def work_init(worker):
    path = os.path.join(worker.config_dir, worker.params.get("db",
                                                             "queue.db"))
    db = open_queue(path)
    log.info("slot %d consuming %s", worker.slot, path)
    return {"db": db,
            "batch": int(worker.params.get("batch", 10)),
            "lease": float(worker.params.get("lease", 60))}


def claim(db, lease):
    """Takes the oldest new job, or one whose lease ran out; (id, payload)
    or None."""
    now = time.time()
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "UPDATE jobs SET state = 'taken', taken_at = ?, worker = ? "
            "WHERE id = (SELECT id FROM jobs WHERE state = 'new' "
            "            OR (state = 'taken' AND taken_at < ?) "
            "            ORDER BY id LIMIT 1) "
            "RETURNING id, payload", (now, os.getpid(), now - lease)
        ).fetchone()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return row


def handle(payload):
    return hashlib.sha256(payload.encode()).hexdigest()


def work(worker, state):
    db = state["db"]
    for _ in range(state["batch"]):
        if worker.stopping:
            break
        job = claim(db, state["lease"])
        if job is None:
            break
        job_id, payload = job
        result = handle(payload)
        db.execute("UPDATE jobs SET state = 'done', result = ? "
                   "WHERE id = ? AND worker = ?",
                   (result, job_id, os.getpid()))
        log.debug("job %d done", job_id)


def work_fini(worker, state):
    state["db"].close()
    log.info("slot %d done after %d calls", worker.slot, worker.calls)
