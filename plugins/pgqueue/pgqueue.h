/*
 * pgqueue.h - what the files of the pgqueue plugin share: its params, the
 * connection to PostgreSQL with its outage bookkeeping, and a worker's
 * whole state.  Each .c file owns one part; this header only declares.
 */
#ifndef PGQUEUE_H
#define PGQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <pmhost.h>

#define NS_PER_MS		1000000LL
#define NS_PER_SEC		1000000000LL

#define QUEUE_NAME_MAX		48	/* "pgqueue." + name fits a channel */
#define ERR_MAX			1024	/* an error kept for a job or a log */

/* params, validated; strings and argv are malloc'd. */
struct pgq_params {
	char		*conninfo;
	char		*queue;
	int		 batch;
	int		 max_attempts;
	int		 retry_delay_ms;
	int		 retry_max_delay_ms;
	int		 wait_ms;
	int		 handler_timeout_ms;	/* 0: none */
	char		*sql;			/* handler.sql, or NULL */
	char		**argv;			/* handler.command, or NULL */
	char		*program;		/* argv[0] found on disk */
};

/* params.c */
int	params_parse(pm_worker *, const char *json, struct pgq_params *);
int	params_find_program(pm_worker *, struct pgq_params *);
void	params_free(struct pgq_params *);

/*
 * The connection.  DOWN waits for retry_at, CONNECTING is a PQconnectPoll
 * in progress, OPEN is connected but not yet set up by the caller, UP is
 * ready for jobs.  An outage runs from the first failure to the next UP.
 */
enum link_state {
	LINK_DOWN,
	LINK_CONNECTING,
	LINK_OPEN,
	LINK_UP
};

struct link {
	PGconn		*conn;
	enum link_state	 state;
	PostgresPollingStatusType polling;
	const char	*conninfo;
	char		 appname[64];
	int64_t		 attempt_deadline;
	int64_t		 retry_at;
	int64_t		 backoff_ns;
	int64_t		 down_since;	/* 0: no outage */
	int64_t		 reminded_at;
	unsigned	 attempts;	/* failed attempts in this outage */
	int		 served;	/* a connection has served: an
					 * outage is a loss */
	char		 target[256];	/* "dbname on host:port", no secrets */
	uint64_t	 rng;
	PQnoticeReceiver notice;
	void		*notice_arg;
};

/* link.c */
void	link_init(struct link *, const char *conninfo, const char *appname);
enum link_state link_connect(pm_worker *, struct link *, int64_t deadline);
void	link_ready(struct link *);
void	link_healthy(pm_worker *, struct link *);
void	link_fail(pm_worker *, struct link *, const char *what,
	    const char *why);
int	link_wait(pm_worker *, struct link *, int64_t deadline);
void	link_close(struct link *);
int	link_lost(const struct link *, const PGresult *);
void	error_text(const PGconn *, const PGresult *, char *, size_t);

/* schema.c */
int	schema_migrate(PGconn *, char *err, size_t errlen);

/* A command job whose outcome is known but not yet recorded. */
struct pending {
	int		 set;
	long long	 id;
	int		 token;		/* attempts when claimed */
	int		 leased;	/* our session holds its lock */
	int		 ok;
	char		 err[ERR_MAX];
};

/* A worker's state, from work_init to work_fini. */
struct pgq {
	pm_worker	*w;
	struct pgq_params p;
	struct link	 link;
	char		 worker[128];	/* "host:pid", kept with each job */
	char		 channel[64];	/* "pgqueue.QUEUE" */
	char		*ids;		/* "{1,2,...}" for the done update */
	size_t		 ids_size;
	int64_t		 rescue_at;
	struct pending	 pending;
};

/* jobs.c */
int	jobs_setup(struct pgq *, char *err, size_t errlen);
int	jobs_run_sql(struct pgq *);
int	jobs_run_command(struct pgq *);
int	jobs_finish_pending(struct pgq *);
int	jobs_rescue(struct pgq *);
int	jobs_next_due(struct pgq *, int64_t *due);

/* command.c */
int	command_run(pm_worker *, const struct pgq_params *,
	    const char *payload, long long id, int attempt, char *err,
	    size_t errlen);

/* pgqueue.c */
int64_t	mono_ns(void);

#endif /* PGQUEUE_H */
