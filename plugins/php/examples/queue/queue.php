<?php
/*
 * A job queue in one SQLite file, shared by the consumer (consumer.php,
 * run by pmhost) and producers (enqueue.php, or any SQLite client).
 *
 * A job is a row of `jobs`.  A worker claims the oldest queued job with
 * one UPDATE ... RETURNING (SQLite serialises writers, so no two workers
 * claim the same row), runs it outside any transaction, then records
 * `done` with its result or `failed` with the error.  A worker that dies
 * in between leaves its job `running` under its pid; the next worker to
 * start puts such jobs back in the queue.  Every job is thus done at least
 * once, and exactly once unless a worker dies after the job's effect and
 * before its record.
 */

namespace Queue;

use PDO;

const SCHEMA = <<<'SQL'
CREATE TABLE IF NOT EXISTS jobs (
    id        INTEGER PRIMARY KEY,
    payload   TEXT NOT NULL,
    state     TEXT NOT NULL DEFAULT 'queued'
              CHECK (state IN ('queued', 'running', 'done', 'failed')),
    worker    INTEGER,
    attempts  INTEGER NOT NULL DEFAULT 0,
    result    TEXT,
    error     TEXT,
    queued_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400),
    done_at   REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
SQL;

/** Opens (and if need be creates) the queue at $path. */
function open(string $path): PDO
{
    $db = new PDO('sqlite:' . $path, null, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        PDO::ATTR_TIMEOUT => 10,            // wait for a busy writer
    ]);
    // WAL: producers and the workers' reads do not block each other.
    $db->exec('PRAGMA journal_mode = WAL');
    $db->exec(SCHEMA);
    return $db;
}

/** Adds a job; its id. */
function enqueue(PDO $db, string $payload): int
{
    $db->prepare('INSERT INTO jobs (payload) VALUES (?)')->execute([$payload]);
    return (int)$db->lastInsertId();
}

/** Claims the oldest queued job for process $pid; null if there is none. */
function claim(PDO $db, int $pid): ?array
{
    $st = $db->prepare(
        "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1
          WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
                       ORDER BY id LIMIT 1)
         RETURNING id, payload, attempts");
    $st->execute([$pid]);
    $job = $st->fetch();
    $st->closeCursor();
    return $job === false ? null : $job;
}

/** Records the end of a job this worker claimed. */
function finish(PDO $db, int $id, int $pid, ?string $result, ?string $error): void
{
    $db->prepare(
        "UPDATE jobs SET state = ?, result = ?, error = ?,
                done_at = (julianday('now') - 2440587.5) * 86400
          WHERE id = ? AND state = 'running' AND worker = ?")
       ->execute([$error === null ? 'done' : 'failed', $result, $error,
                  $id, $pid]);
}

/** Puts back the jobs of workers that died holding them; how many. */
function requeue_abandoned(PDO $db): int
{
    $n = 0;
    $rows = $db->query("SELECT DISTINCT worker FROM jobs WHERE state = 'running'")
               ->fetchAll(PDO::FETCH_COLUMN);
    foreach ($rows as $pid) {
        if (!file_exists('/proc/' . (int)$pid)) {
            $st = $db->prepare("UPDATE jobs SET state = 'queued', worker = NULL
                                 WHERE state = 'running' AND worker = ?");
            $st->execute([$pid]);
            $n += $st->rowCount();
        }
    }
    return $n;
}
