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
} weft_config_t;

/*
 * Fill *cfg with defaults, then apply environment overrides:
 *   WEFT_WORKERS=N   workers
 *   WEFT_PIN=0|1     pin
 *   WEFT_STACK=BYTES stack_size
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

/* A short English description of a weft error code (negative errno). */
WEFT_EXTERN const char *weft_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
