<?php
/*
 * Adds jobs to the queue:  php enqueue.php QUEUE.db PAYLOAD...
 * e.g.  php enqueue.php /tmp/pmhost-phpqueue.db '{"op":"sha256","data":"hi"}'
 */

require __DIR__ . '/queue.php';

if ($argc < 3) {
    fwrite(STDERR, "usage: php enqueue.php QUEUE.db PAYLOAD...\n");
    exit(2);
}
$db = Queue\open($argv[1]);
$db->beginTransaction();
foreach (array_slice($argv, 2) as $payload) {
    echo Queue\enqueue($db, $payload), "\n";
}
$db->commit();
