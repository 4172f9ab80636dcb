<?php
/*
 * process_manage's API under pmhost: the classes a process_manage start
 * script touches, defined by the PHP plugin before any script runs.
 * Manage::start() hands the closures to pmhost and returns; pmhost's JSON
 * config governs the processes.  The Worker handed to the closures answers
 * from pmhost (call count, stop requests); ProcessLog writes to pmhost's
 * log.  Commands that manage processes (stop, status, ...) belong to the
 * pmhost command line and say so.
 */

namespace ProcessManage\Exception {

    class Exception extends \Exception
    {
        public $preMessage = '';

        /** Class, message, place and trace, as process_manage prints it. */
        public function getExceptionAsString()
        {
            return get_class($this) . ': ' . $this->preMessage . ' '
                . $this->getMessage() . ' in ' . $this->getFile()
                . ' on line ' . $this->getLine() . PHP_EOL
                . $this->getTraceAsString();
        }

        public function __toString(): string
        {
            return $this->getExceptionAsString();
        }
    }

    /** Logged at error level when made, as process_manage does. */
    class ProcessException extends Exception
    {
        public function __construct(string $message = '', int $code = 0,
            ?\Throwable $previous = null)
        {
            parent::__construct($message, $code, $previous);
            $this->preMessage = '(pid ' . getmypid() . ', '
                . \pmhost\title() . ')';
            \pmhost\log(\pmhost\LOG_ERROR, get_class($this) . ': '
                . $message . ' in ' . $this->getFile() . ':'
                . $this->getLine());
        }
    }

    class CommandException extends Exception
    {
    }
}

namespace ProcessManage\Config {

    /** Static settings; under pmhost they are kept but change nothing. */
    abstract class Config
    {
        public static function LoadConfig(array $config)
        {
            foreach ($config as $name => $value) {
                if (property_exists(static::class, $name)) {
                    static::$$name = $value;
                }
            }
        }
    }

    class ProcessConfig extends Config
    {
        public static $PidRoot = '/tmp/pm/pid';
        public static $TitlePrefix = 'process_m';
        public static $StatusFileRoot = '/tmp/pm/status';
    }

    class LogConfig extends Config
    {
        /** false: ProcessLog writes nothing. */
        public static $ENABLED = true;
        public static $LogBaseRoot = '';
        public static $Debug_FileNamePrefix = '';
        public static $Info_FileNamePrefix = '';
        public static $Notice_FileNamePrefix = '';
        public static $Warning_FileNamePrefix = '';
        public static $Error_FileNamePrefix = 'error_';
        public static $Fatal_FileNamePrefix = 'fatal_';
        public static $LogFileName = 'run';
        public static $LogDeLimiterRule = 'Y-m-d';
        public static $ProcessLogFileName = 'process';
        public static $ProcessLogDeLimiterRule = 'Y-m-d';
    }
}

namespace ProcessManage\Log {

    use ProcessManage\Config\LogConfig;

    /** Lines go to pmhost's log at their level; "fatal" is an error. */
    class Log
    {
        const LEVELS = ['debug', 'info', 'notice', 'warning', 'error',
            'fatal'];

        protected static function write(string $level, $content)
        {
            if (!LogConfig::$ENABLED) {
                return true;
            }
            if (!is_string($content)) {
                $content = is_scalar($content) || $content === null
                    ? (string)$content : print_r($content, true);
            }
            \pmhost\log($level === 'fatal' ? 'error' : $level, $content);
            return true;
        }

        public static function debug($content, $fileName = '')
        {
            return static::write('debug', $content);
        }

        public static function info($content, $fileName = '')
        {
            return static::write('info', $content);
        }

        public static function notice($content, $fileName = '')
        {
            return static::write('notice', $content);
        }

        public static function warning($content, $fileName = '')
        {
            return static::write('warning', $content);
        }

        public static function error($content, $fileName = '')
        {
            return static::write('error', $content);
        }

        public static function fatal($content, $fileName = '')
        {
            return static::write('fatal', $content);
        }

        /** Any other name logs at debug level, as in process_manage. */
        public static function __callStatic($name, $arguments)
        {
            $level = strtolower($name);
            return static::write(in_array($level, self::LEVELS, true)
                ? $level : 'debug', $arguments[0] ?? '');
        }
    }

    class ProcessLog extends Log
    {
        /** A line about a process at a level named as a string. */
        public static function Record($level, $process, $message)
        {
            $level = strtolower((string)$level);
            return static::write(in_array($level, self::LEVELS, true)
                ? $level : 'info', $message);
        }
    }
}

namespace ProcessManage\Process {

    use ProcessManage\Config\ProcessConfig;
    use ProcessManage\Exception\ProcessException;

    abstract class Process
    {
        const STATUS_PREPARE = 0;
        const STATUS_INIT = 1;
        const STATUS_RUN = 2;
        const STATUS_SET_STOP = 3;
        const STATUS_STOPPED = 4;
        const TITLE_DELIMITER = ':';

        public $pid = 0;
        public $title = '';
        public $baseTitle = 'process';
        protected $titlePrefix = '';
        protected $status = self::STATUS_PREPARE;
        protected $config = [];
        protected $startTime = 0;

        public function __construct(array $config = [], int $pid = 0)
        {
            $this->config = $config;
            $this->titlePrefix = $config['titlePrefix']
                ?? ProcessConfig::$TitlePrefix;
            $this->baseTitle = $config['baseTitle'] ?? 'process';
            $type = substr(strrchr('\\' . static::class, '\\'), 1);
            $this->title = implode(self::TITLE_DELIMITER, array_filter(
                [$this->titlePrefix, $type, $this->baseTitle]));
            $this->pid = $pid > 0 ? $pid : getmypid();
        }

        public function resetPid()
        {
            $this->pid = getmypid();
        }

        public function setWorkInit(?\Closure $closure = null)
        {
            return $this;
        }

        public function setWork(?\Closure $closure = null)
        {
            return $this;
        }

        public function setStop()
        {
            $this->status = self::STATUS_SET_STOP;
            return true;
        }

        public function isExpectStop()
        {
            return $this->status === self::STATUS_SET_STOP;
        }

        public function isRun()
        {
            return $this->status === self::STATUS_RUN;
        }

        public function run()
        {
            throw new ProcessException('under pmhost, pmhost runs the '
                . 'processes: start the task with `pmhost run CONFIG`');
        }

        public function isAlive()
        {
            return static::CheckAlive($this->pid);
        }

        public static function CheckAlive($pid)
        {
            if (empty($pid)) {
                return false;
            }
            return function_exists('posix_kill') ? posix_kill($pid, 0)
                : file_exists('/proc/' . (int)$pid);
        }
    }

    /**
     * The worker a closure runs in.  Its title, baseTitle and pid are
     * pmhost's; the call count and stop requests are read from pmhost.
     */
    class Worker extends Process
    {
        public function __construct(array $config = [], int $pid = 0)
        {
            parent::__construct($config, $pid);
            $this->title = \pmhost\title();
            $parts = explode(self::TITLE_DELIMITER, $this->title);
            $this->baseTitle = (string)end($parts);
            $this->titlePrefix = implode(self::TITLE_DELIMITER,
                array_slice($parts, 0, -2));
            $this->status = self::STATUS_RUN;
            $this->startTime = time();
        }

        /** work calls completed so far (0 during the first). */
        public function getExecuteTimes()
        {
            return \pmhost\calls();
        }

        /** Ends this worker normally once the current call returns. */
        public function setStop()
        {
            \pmhost\done();
            return parent::setStop();
        }

        /** True once pmhost asked the worker to stop, or setStop() was. */
        public function isExpectStop()
        {
            return parent::isExpectStop() || \pmhost\stopping();
        }

        public function isRun()
        {
            return !$this->isExpectStop();
        }
    }

    /** The pmhost master, as far as a script can know it. */
    class Master extends Process
    {
        public function __construct(array $config = [], int $pid = 0)
        {
            parent::__construct($config, $pid);
            $this->pid = $pid > 0 ? $pid : (function_exists('posix_getppid')
                ? posix_getppid() : 0);
        }
    }

    /** One task's closures; start() hands them to pmhost and returns. */
    class Manage
    {
        protected $config = [];
        protected $closureInit = null;
        protected $closure = null;
        protected $master = null;

        public function __construct(array $config = [])
        {
            $this->config = $config;
            $this->master = new Master($config);
        }

        /** pmhost run -d detaches; here there is nothing to do. */
        public function setBackground()
        {
            return $this;
        }

        public function setWorkInit(?\Closure $closure = null)
        {
            if ($closure !== null) {
                $this->closureInit = $closure;
            }
            return $this;
        }

        public function setWork(?\Closure $closure = null)
        {
            if ($closure !== null) {
                $this->closure = $closure;
            }
            return $this;
        }

        public function getMaster()
        {
            return $this->master;
        }

        public function start()
        {
            if ($this->closure === null) {
                throw new ProcessException('There is no work: call '
                    . 'setWork() before start()');
            }
            \pmhost\compat\register($this->config, $this->closureInit,
                $this->closure);
        }

        /** A restart script starts the task too: pmhost restarts. */
        public function restart()
        {
            $this->start();
        }

        public function stop()
        {
            throw $this->command('stop');
        }

        public function wakeup()
        {
            throw $this->command('wakeup');
        }

        public function status()
        {
            throw $this->command('status');
        }

        public function saveProcessStatusToCache()
        {
            throw $this->command('status');
        }

        public function getProcessStatusByCache()
        {
            throw $this->command('status');
        }

        /** status()'s table, for arrays in its shape. */
        public static function showStatus(array $status,
            bool $isReturn = false)
        {
            $out = '';
            foreach ($status as $type => $rows) {
                $out .= $type . PHP_EOL;
                $width = [];
                foreach ($rows as $row) {
                    foreach ($row as $k => $v) {
                        $width[$k] = max($width[$k] ?? strlen($k),
                            strlen((string)$v));
                    }
                }
                $head = true;
                foreach ($rows as $row) {
                    if ($head) {
                        $out .= '  ' . implode('    ', array_map(
                            fn ($k) => str_pad($k, $width[$k]),
                            array_keys($row))) . PHP_EOL;
                        $head = false;
                    }
                    $cells = [];
                    foreach ($row as $k => $v) {
                        $cells[] = str_pad((string)$v, $width[$k]);
                    }
                    $out .= '  ' . implode('    ', $cells) . PHP_EOL;
                }
                $out .= PHP_EOL;
            }
            if ($isReturn) {
                return $out;
            }
            echo $out;
            return null;
        }

        private function command(string $what)
        {
            $title = $this->config['baseTitle'] ?? 'process';
            return new ProcessException("Manage::$what(): under pmhost, "
                . "use `pmhost $what --title $title`");
        }
    }

    /** Several tasks in one script: pmhost runs the one its config names. */
    class ManageMultiple
    {
        protected $manages = [];

        public function addManage(Manage $manage)
        {
            $this->manages[$manage->getMaster()->baseTitle] = $manage;
        }

        public function removeManage(string $baseTitle)
        {
            unset($this->manages[$baseTitle]);
        }

        public function getManage(string $baseTitle)
        {
            return $this->manages[$baseTitle] ?? null;
        }

        public function start()
        {
            foreach ($this->manages as $manage) {
                $manage->start();
            }
        }

        public function restart()
        {
            $this->start();
        }

        public function stop()
        {
            foreach ($this->manages as $manage) {
                $manage->stop();
            }
        }

        public function wakeup()
        {
            foreach ($this->manages as $manage) {
                $manage->wakeup();
            }
        }

        public function status()
        {
            foreach ($this->manages as $manage) {
                $manage->status();
            }
        }
    }
}

namespace pmhost\compat {

    /** The Worker of this process, made by the plugin in each worker. */
    function worker(array $config): \ProcessManage\Process\Worker
    {
        return new \ProcessManage\Process\Worker($config);
    }
}
