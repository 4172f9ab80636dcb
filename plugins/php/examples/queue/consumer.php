<?php
/*
 * The queue's consumer, in pmhost's own script form: the script returns
 * its init and work closures.  Each work() call drains up to
 * params.batch jobs, then returns; pmhost calls it again after
 * executeUSleep, so an empty queue costs one query per period.
 *
 * A job's payload is JSON: {"op": "sha256" | "upper" | "fail", "data": ...}.
 * Replace run_job() with the real work.
 */

require __DIR__ . '/queue.php';

/** What a job does; its result, or an exception that fails the job. */
function run_job(array $job): string
{
    $spec = json_decode($job['payload'], true, 8, JSON_THROW_ON_ERROR);
    switch ($spec['op'] ?? null) {
    case 'sha256':
        return hash('sha256', (string)($spec['data'] ?? ''));
    case 'upper':
        return strtoupper((string)($spec['data'] ?? ''));
    default:
        throw new InvalidArgumentException('unknown op ' .
            json_encode($spec['op'] ?? null));
    }
}

return [
    'init' => function (array $params): PDO {
        // Relative to the JSON config's folder, like params.script.
        $path = $params['db'] ?? 'queue.db';
        if ($path[0] !== '/') {
            $path = pmhost\config_dir() . '/' . $path;
        }
        $db = Queue\open($path);
        if (($n = Queue\requeue_abandoned($db)) > 0) {
            pmhost\log('notice', "queue: requeued $n abandoned jobs");
        }
        return $db;
    },

    'work' => function (PDO $db, array $params) {
        $pid = getmypid();
        for ($i = 0; $i < ($params['batch'] ?? 10); $i++) {
            // A stop request waits for this job only, not for the batch.
            if (pmhost\stopping() || ($job = Queue\claim($db, $pid)) === null) {
                return;
            }
            try {
                $result = run_job($job);
                Queue\finish($db, $job['id'], $pid, $result, null);
                pmhost\log('debug', "queue: job {$job['id']} done");
            } catch (Throwable $e) {
                $error = get_class($e) . ': ' . $e->getMessage();
                Queue\finish($db, $job['id'], $pid, null, $error);
                pmhost\log('warning', "queue: job {$job['id']} failed: $error");
            }
        }
    },
];
