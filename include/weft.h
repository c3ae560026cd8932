/*
 * weft: a work-stealing concurrency runtime for C.
 *
 * This is the only public header.  Every fallible function returns 0 (or a
 * documented non-negative value) on success and a negative errno on failure;
 * nothing here prints, aborts or exits because of a caller's mistake.
 *
 * Threads.  A runtime owns N worker threads.  "On a worker" means the calling
 * thread is one of them, i.e. code running inside a task.  Calls that need a
 * worker (weft_spawn, weft_wait, weft_parallel_for) return -EPERM elsewhere.
 * weft_run, weft_submit and weft_future_wait work from any thread.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(WEFT_BUILDING)
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

typedef struct weft_runtime weft_runtime_t;
typedef struct weft_future weft_future_t;
typedef void (*weft_task_fn)(void *arg);

/* Runtime configuration.  Always start from weft_config_init(). */
typedef struct weft_config {
	/* Worker threads.  0 = one per CPU in the process's affinity mask. */
	unsigned workers;
	/* Nonzero: pin worker i to the i-th CPU of the affinity mask
	 * (round-robin when there are more workers than CPUs). */
	int pin;
	/* Stack size of each worker thread in bytes; 0 = 8 MiB.  Fork-join
	 * recursion runs on it. */
	size_t stack_size;
	/* log2 of each worker deque's initial capacity (it grows on demand);
	 * 0 = 10 (1024 tasks). Accepted range 1..24. */
	unsigned deque_log2;
	/* Nonzero: print weft_stats_print's summary to stderr at destroy. */
	int stats_at_exit;
	/* Non-NULL: record a scheduling trace and write it to this path at
	 * destroy (see weft_trace_write).  The string must outlive create. */
	const char *trace_path;
	/* Events kept per worker (a ring: the newest survive); 0 = 262144. */
	unsigned trace_events;
} weft_config_t;

/*
 * Fill *cfg with defaults, then apply environment overrides:
 *   WEFT_WORKERS=N   workers
 *   WEFT_PIN=0|1     pin
 *   WEFT_STACK=BYTES stack_size
 *   WEFT_STATS=1     stats_at_exit
 *   WEFT_TRACE=PATH  trace_path (the environment's string is used as is)
 *   WEFT_TRACE_EVENTS=N trace_events
 * Malformed values are ignored (the default stays).
 */
WEFT_EXTERN void weft_config_init(weft_config_t *cfg);

/*
 * Create a runtime and start its workers.  cfg may be NULL (defaults plus
 * environment).  Returns 0 and sets *rt, or -EINVAL (rt NULL, a field out of
 * range), -ENOMEM, -EAGAIN (a thread could not be started).
 */
WEFT_EXTERN int weft_runtime_create(weft_runtime_t **rt, const weft_config_t *cfg);

/*
 * Finish all submitted work (including detached tasks and the tasks they
 * spawn), join the workers and free the runtime.  Returns 0, -EINVAL (rt
 * NULL) or -EDEADLK when called from one of rt's own workers (nothing is
 * freed then).
 */
WEFT_EXTERN int weft_runtime_destroy(weft_runtime_t *rt);

/* Number of workers of rt; 0 if rt is NULL. */
WEFT_EXTERN unsigned weft_runtime_workers(const weft_runtime_t *rt);

/* Index of the calling worker in [0, workers), or -1 off the workers. */
WEFT_EXTERN int weft_worker_index(void);

/* The runtime the calling worker belongs to, or NULL off the workers. */
WEFT_EXTERN weft_runtime_t *weft_runtime_current(void);

/*
 * Run fn(arg) as a task of rt and block until it returns.  From any thread;
 * on one of rt's workers it runs fn directly.  Returns 0, -EINVAL (rt or fn
 * NULL), -ENOMEM, or -ESHUTDOWN while rt is being destroyed.
 */
WEFT_EXTERN int weft_run(weft_runtime_t *rt, weft_task_fn fn, void *arg);

/*
 * Submit fn(arg) to rt from any thread.  With future NULL the task is
 * detached; otherwise *future receives a handle that must be released with
 * weft_future_free (before or after completion).  Returns 0, -EINVAL,
 * -ENOMEM, or -ESHUTDOWN while rt is being destroyed.
 */
WEFT_EXTERN int weft_submit(weft_runtime_t *rt, weft_task_fn fn, void *arg,
                            weft_future_t **future);

/*
 * Wait until the future's task has returned.  Off the workers the thread
 * sleeps; on a worker it runs other tasks while it waits.  Returns 0 or
 * -EINVAL (f NULL).
 */
WEFT_EXTERN int weft_future_wait(weft_future_t *f);

/* Nonzero once the future's task has returned (never blocks); 0 if f NULL. */
WEFT_EXTERN int weft_future_done(const weft_future_t *f);

/* Release a future handle.  NULL is ignored. */
WEFT_EXTERN void weft_future_free(weft_future_t *f);

/*
 * A fork-join group.  It lives wherever the caller puts it (usually its own
 * stack); the fields are private.  weft_group_init, then any number of
 * weft_spawn, then weft_wait before the group goes out of scope.  A group
 * may be reused after weft_wait returns.
 */
typedef struct weft_group {
	void *owner_;             /* worker that initialised the group */
	uint64_t spawned_;        /* spawns by the owner (owner-private) */
	uint64_t done_;           /* completions by the owner (owner-private) */
	uint64_t remote_spawned_; /* spawns by other workers (atomic) */
	uint64_t remote_done_;    /* completions by other workers (atomic) */
} weft_group_t;

/* Prepare g for use on the calling worker.  Off the workers g is set up so
 * that weft_spawn on it returns -EPERM.  NULL is ignored. */
WEFT_EXTERN void weft_group_init(weft_group_t *g);

/*
 * Spawn fn(arg) into g.  The task may run on any worker, at any time before
 * weft_wait(g) returns.  Returns 0, -EINVAL (g or fn NULL, g not
 * initialised), -EPERM off the workers, -ENOMEM.
 */
WEFT_EXTERN int weft_spawn(weft_group_t *g, weft_task_fn fn, void *arg);

/*
 * Wait until every task spawned into g (including tasks those tasks spawned
 * into g) has returned.  The calling worker runs tasks meanwhile, its own
 * first.  Returns 0, -EINVAL, or -EPERM when called off the workers or from
 * another worker than the one that initialised g.
 */
WEFT_EXTERN int weft_wait(weft_group_t *g);

typedef void (*weft_range_fn)(size_t lo, size_t hi, void *ctx);

/*
 * Call body(lo, hi, ctx) over disjoint subranges covering [begin, end),
 * in parallel, splitting the range recursively down to at most grain
 * iterations per call (grain 0: about 8 pieces per worker).  Must be called
 * on a worker (inside weft_run or a task).  Returns 0 when done (also for an
 * empty range), -EINVAL (body NULL, begin > end), -EPERM off the workers,
 * -ENOMEM.
 */
WEFT_EXTERN int weft_parallel_for(size_t begin, size_t end, size_t grain,
                                  weft_range_fn body, void *ctx);

/*
 * Statistics.  Each worker keeps its own counters (owner-written, no shared
 * cache line); a snapshot sums them.  Counters only grow.  Built without
 * them (./configure --disable-stats) every counter reads 0.
 */
typedef struct weft_stats {
	uint64_t tasks_run;      /* tasks run: derived, exact when quiescent (below) */
	uint64_t spawns;         /* successful weft_spawn calls */
	uint64_t submits;        /* successful weft_submit calls (weft_run included) */
	uint64_t injected;       /* tasks taken from the outside-submission queue */
	uint64_t steal_attempts; /* steal tries on another worker's deque */
	uint64_t steals;         /* of which took a task */
	uint64_t parks;          /* times a worker went to sleep */
	uint64_t wakeups;        /* times a sleeping worker was woken */
	uint64_t parked_ns;      /* time spent asleep */
} weft_stats_t;

/*
 * Snapshot the counters: per_worker[i] for the first min(n, workers)
 * workers (per_worker may be NULL when n is 0), and *total (may be NULL) the
 * sum over all workers plus what outside threads did (their submits).
 * Counts are exact once the runtime is quiescent; while it runs each
 * counter is a recent value.  tasks_run is not counted on the hot path but
 * derived (spawns + submits - stolen from the worker + steals + injected),
 * so while tasks wait in deques it includes them.  Returns the number of
 * workers, or -EINVAL.
 */
WEFT_EXTERN int weft_stats_get(const weft_runtime_t *rt, weft_stats_t *total,
                               weft_stats_t *per_worker, unsigned n);

/* Write a human summary of the counters, a line per worker and a total, to
 * out.  Returns 0, -EINVAL (rt or out NULL) or -EIO. */
WEFT_EXTERN int weft_stats_print(const weft_runtime_t *rt, FILE *out);

/*
 * Write the scheduling trace recorded so far (see trace_path) to path, in
 * the format tools/weft-trace reads.  Returns 0, -EINVAL (rt or path NULL),
 * -ENOTSUP (tracing off for rt, or built with --disable-trace), or the
 * negative errno of the failed open or write.
 */
WEFT_EXTERN int weft_trace_write(weft_runtime_t *rt, const char *path);

/* A short English description of a weft error code (negative errno). */
WEFT_EXTERN const char *weft_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
