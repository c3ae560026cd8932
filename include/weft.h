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
#include <sys/socket.h>
#include <sys/types.h>

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
	/* Event backend (weft_io_backend_t): WEFT_IO_AUTO tries io_uring and
	 * falls back to epoll when io_uring cannot be set up. */
	int io;
	/* Size of each fiber's stack in bytes, guard page not included; 0 =
	 * 256 KiB.  Only the pages a fiber touches take memory. */
	size_t fiber_stack_size;
	/* Submission-queue entries of each worker's io_uring; 0 = 256. */
	unsigned io_entries;
} weft_config_t;

/* Event backends (weft_config_t.io, WEFT_IO=uring|epoll|auto). */
typedef enum weft_io_backend {
	WEFT_IO_AUTO = 0,
	WEFT_IO_URING = 1,
	WEFT_IO_EPOLL = 2
} weft_io_backend_t;

/*
 * Fill *cfg with defaults, then apply environment overrides:
 *   WEFT_WORKERS=N   workers
 *   WEFT_PIN=0|1     pin
 *   WEFT_STACK=BYTES stack_size
 *   WEFT_STATS=1     stats_at_exit
 *   WEFT_TRACE=PATH  trace_path (the environment's string is used as is)
 *   WEFT_TRACE_EVENTS=N trace_events
 *   WEFT_IO=auto|uring|epoll io
 *   WEFT_FIBER_STACK=BYTES fiber_stack_size
 * Malformed values are ignored (the default stays).  The epoll backend also
 * reads WEFT_EPOLL_CHECK_MS=N when a runtime is created: how long a wait on
 * a socket that weft_accept or weft_connect connected may rely on its
 * persistent registration
 * before it is checked with a system call (default 20; 0: no persistent
 * registrations, one epoll_ctl per wait).  The check bounds what a number
 * closed with close() instead of weft_close and reused can cost an op.
 */
WEFT_EXTERN void weft_config_init(weft_config_t *cfg);

/*
 * Create a runtime and start its workers.  cfg may be NULL (defaults plus
 * environment).  Returns 0 and sets *rt, or -EINVAL (rt NULL, a field out of
 * range), -ENOMEM, -EAGAIN (a thread could not be started), or, when
 * io is WEFT_IO_URING (asked for explicitly) and io_uring cannot be set up,
 * that setup's negative errno.  With WEFT_IO_AUTO a missing io_uring is
 * never an error: the runtime uses epoll (weft_runtime_io_backend).
 */
WEFT_EXTERN int weft_runtime_create(weft_runtime_t **rt, const weft_config_t *cfg);

/*
 * Finish all submitted work (including detached tasks and the tasks they
 * spawn, fibers and callback operations), join the workers and free the
 * runtime.  From the moment destroy starts, every I/O operation and sleep
 * still pending, and every one started afterwards, completes with
 * -ECANCELED, so fibers blocked on I/O wake up and can return; destroy
 * waits until they have.  (A fiber that loops forever ignoring errors keeps
 * destroy waiting.)  Returns 0, -EINVAL (rt NULL) or -EDEADLK when called
 * from one of rt's own workers (nothing is freed then).
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
	uint64_t spawns;         /* successful weft_spawn calls (typed tasks,
	                            weft/task.h, count nowhere but in steals and,
	                            when stolen, in the thief's tasks_run) */
	uint64_t submits;        /* successful weft_submit calls (weft_run included) */
	uint64_t injected;       /* tasks taken from the outside-submission queue */
	uint64_t steal_attempts; /* steal tries on another worker's deque */
	uint64_t steals;         /* of which took a task */
	uint64_t parks;          /* times a worker went to sleep */
	uint64_t wakeups;        /* times a sleeping worker was woken */
	uint64_t parked_ns;      /* time spent asleep */
	uint64_t fibers;         /* fibers started (weft_go) */
	uint64_t resumes;        /* continuations queued: fibers and I/O callbacks
	                            made runnable again (counted in tasks_run) */
	uint64_t io_ops;         /* I/O operations and timers started */
	uint64_t io_helps;       /* times this worker reaped another worker's
	                            epoll set, which had gone unreaped too long */
	uint64_t io_yields;      /* times this worker gave its core up to a
	                            runnable io_uring worker whose completions
	                            had waited for its thread too long */
	uint64_t io_pulls;       /* of those, times it first moved that worker
	                            onto its own CPU, where the worker had been
	                            waiting for one (its CPU clock stood still);
	                            the worker puts its own CPU mask back when
	                            it next looks for work */
} weft_stats_t;

/*
 * Snapshot the counters: per_worker[i] for the first min(n, workers)
 * workers (per_worker may be NULL when n is 0), and *total (may be NULL) the
 * sum over all workers plus what outside threads did (their submits).
 * Counts are exact once the runtime is quiescent; while it runs each
 * counter is a recent value.  tasks_run is not counted on the hot path but
 * derived (spawns + submits + resumes - stolen from the worker + steals +
 * injected),
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

/* ------------------------------------------------------------------------
 * Event completion: fibers, I/O operations and timers.
 *
 * Every worker owns its own event state (an io_uring, or an epoll set) and,
 * when it has nothing to run, waits inside it, so the same workers run
 * fork-join tasks and resume the work that waited for I/O.  An operation
 * completes on the worker that started it; what continues after it (a
 * callback, or the fiber that waited) is pushed on that worker's deque,
 * where other workers may steal it.
 *
 * Two ways to continue after an operation, on one mechanism:
 *   - callbacks: fill a weft_op_t and weft_op_submit it; op->cb(op) runs as
 *     a task on a worker with op->result set.
 *   - fibers: code started with weft_go runs on its own stack and calls the
 *     blocking-style functions below (weft_read, weft_recv, weft_sleep,
 *     weft_op_run, ...): they suspend only the calling fiber, never the
 *     worker, and return when the kernel completes the operation.  A fiber
 *     may resume on another worker than the one it suspended on: never keep
 *     the address of a thread-local (errno included) across such a call.
 *     The functions return results (a count or a negative errno) and leave
 *     errno alone.
 *
 * Called from a plain task (weft_run, weft_submit, weft_spawn) the same
 * functions do not block the worker either: the task waits by helping,
 * like weft_wait, running other tasks on its worker's stack until its
 * operation completes.  It resumes only once the task it is helping with
 * returns, so code that waits often belongs in a fiber.  Called off the
 * workers they make the plain blocking system call (timeouts honoured).
 * ------------------------------------------------------------------------ */

/* The backend rt uses: WEFT_IO_URING or WEFT_IO_EPOLL; -EINVAL if rt NULL. */
WEFT_EXTERN int weft_runtime_io_backend(const weft_runtime_t *rt);

/* Why rt runs on epoll although io_uring was allowed ("io_uring_setup:
 * Operation not permitted", say), or NULL when there is nothing to say. */
WEFT_EXTERN const char *weft_runtime_io_note(const weft_runtime_t *rt);

/*
 * Start fn(arg) as a fiber of rt, from any thread.  It runs on a pooled
 * stack of cfg.fiber_stack_size bytes with a guard page below it, and rt's
 * destroy waits for it to return.  Returns 0, -EINVAL (rt or fn NULL),
 * -ENOMEM (no memory or mappings for the stack), or -ESHUTDOWN when called
 * from outside rt while rt is being destroyed.
 */
WEFT_EXTERN int weft_go(weft_runtime_t *rt, weft_task_fn fn, void *arg);

/* Nonzero when the caller runs in a fiber. */
WEFT_EXTERN int weft_in_fiber(void);

/* In a fiber: let the worker run its other work, then continue (maybe on
 * another worker).  In a plain task, or in a typed task's body (weft/task.h):
 * run one other task in place, if there is one.  Off the workers:
 * sched_yield(). */
WEFT_EXTERN void weft_yield(void);

/* Operation codes of weft_op_t. */
enum weft_opcode {
	WEFT_OP_READ = 1, /* read(fd, buf, len) at off (off -1: the file position) */
	WEFT_OP_WRITE,    /* write(fd, buf, len) at off (off -1: the file position) */
	WEFT_OP_RECV,     /* recv(fd, buf, len, flags) */
	WEFT_OP_SEND,     /* send(fd, buf, len, flags | MSG_NOSIGNAL) */
	WEFT_OP_ACCEPT,   /* accept4(fd, addr, &addrlen, flags); result: new fd */
	WEFT_OP_CONNECT,  /* connect(fd, addr, addrlen) */
	WEFT_OP_CLOSE,    /* close(fd) */
	WEFT_OP_POLL,     /* wait until fd is ready for flags (POLLIN, POLLOUT, ...);
	                     result: the ready events */
	WEFT_OP_SLEEP,    /* complete with 0 after timeout_ns */
	WEFT_OP_ACCEPT_MULTI /* accept4(fd, NULL, NULL, flags) for every connection
	                        until cancelled: weft_op_submit only, see below */
};

typedef struct weft_op weft_op_t;
typedef void (*weft_op_fn)(weft_op_t *op);

/*
 * One I/O operation or timer: a request that the caller owns (put it on the
 * stack for weft_op_run, anywhere that lives until the callback for
 * weft_op_submit).  Zero it, set opcode and the fields the opcode uses.
 * result is the system call's: a byte count, a new fd, 0, or a negative
 * errno; -ETIMEDOUT when timeout_ns passed first, -ECANCELED when
 * cancelled (weft_op_cancel, weft_close on its fd, or runtime destroy).
 * Short reads and writes are results, not errors; EINTR and EAGAIN are
 * never results (the runtime retries or waits).
 */
struct weft_op {
	int opcode;          /* enum weft_opcode */
	int fd;
	void *buf;           /* READ, WRITE, RECV, SEND */
	size_t len;
	int64_t off;         /* READ, WRITE */
	int flags;           /* RECV/SEND msg flags, ACCEPT accept4 flags, POLL events */
	struct sockaddr *addr; /* ACCEPT (out, may be NULL), CONNECT (in) */
	socklen_t addrlen;   /* ACCEPT (in: size of addr; out: length), CONNECT */
	uint64_t timeout_ns; /* 0: none; SLEEP: the duration */
	weft_op_fn cb;       /* weft_op_submit: runs as a task when done */
	void *data;          /* the caller's */
	ssize_t result;      /* set before cb runs / weft_op_run returns */
	void *private_[12];  /* the runtime's */
};

/*
 * Start op; op->cb(op) runs later as a task on one of rt's workers (never
 * inside this call).  From any thread.  Returns 0, -EINVAL (rt, op or cb
 * NULL, unknown opcode, ACCEPT_MULTI with addr), -ENOMEM, or -ESHUTDOWN
 * from outside rt while it is being destroyed.  op must not be touched
 * until cb runs (for ACCEPT_MULTI: until its last cb, below).
 */
WEFT_EXTERN int weft_op_submit(weft_runtime_t *rt, weft_op_t *op);

/*
 * WEFT_OP_ACCEPT_MULTI: one submission accepts connections until it is
 * stopped, like libuv's uv_listen (io_uring's multishot accept where the
 * kernel has it, 5.19+; a plain accept re-issued after each connection
 * elsewhere, and on epoll).  op->cb runs once per accepted connection with
 * op->result the new fd (>= 0; the callback owns it), then once more with a
 * negative result, the last: -ECANCELED after weft_op_cancel or weft_close
 * of fd (or runtime destroy), -ETIMEDOUT when timeout_ns (which bounds the
 * whole submission) passed, or the error that stopped accepting (-EMFILE,
 * say: submit again to go on).  Only after that last call may op be freed
 * or reused.  The calls for one op never overlap: each returns before the
 * next starts, in the order of the connections, possibly on different
 * workers.  op->addr must be NULL (use getpeername).  Connections accepted
 * before a cancel took effect are still delivered, never dropped; only
 * when no memory is left to queue one is it closed.  On io_uring the
 * kernel checks new fds against RLIMIT_NOFILE as it was when the accept
 * started: a limit lowered later applies from the next submission.
 */

/*
 * Perform op and return its result (also stored in op->result).  In a
 * fiber the fiber is suspended; in a task the worker helps; off the workers
 * the system call blocks the thread.  -EINVAL for a NULL op, an unknown
 * opcode, or WEFT_OP_ACCEPT_MULTI (callbacks only).
 */
WEFT_EXTERN ssize_t weft_op_run(weft_op_t *op);

/*
 * Ask for op (started with weft_op_submit, or running in weft_op_run in
 * another fiber) to be cancelled.  From any thread.  Returns 0 when the
 * request was made: op then completes soon, with -ECANCELED unless it had
 * already completed; a request made right after weft_op_submit, before a
 * worker issued op, counts too.  -EALREADY when op is not pending (finished,
 * or never started), -EINVAL for NULL.  op's memory must stay valid until
 * this call returns (a callback that frees op must not race with it); the
 * runtime delays op's continuation until it no longer refers to op.
 */
WEFT_EXTERN int weft_op_cancel(weft_op_t *op);

/* The common operations, in blocking style (see above); results as for
 * weft_op_t.  weft_close first cancels the operations of rt's workers that
 * wait on fd (they complete with -ECANCELED), then closes it. */
WEFT_EXTERN ssize_t weft_read(int fd, void *buf, size_t len, off_t off);
WEFT_EXTERN ssize_t weft_write(int fd, const void *buf, size_t len, off_t off);
WEFT_EXTERN ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
WEFT_EXTERN ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
WEFT_EXTERN int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
WEFT_EXTERN int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
WEFT_EXTERN int weft_close(int fd);
WEFT_EXTERN int weft_sleep(uint64_t ns);

/*
 * Write all len bytes (weft_write, or weft_send for sockets, repeated over
 * short writes; off advances when it is not -1).  Returns len, or the
 * negative errno of the write that failed (bytes before it were written).
 */
WEFT_EXTERN ssize_t weft_write_all(int fd, const void *buf, size_t len, off_t off);

/* Read until len bytes or end of file.  Returns the count (< len only at
 * end of file) or the negative errno of the read that failed. */
WEFT_EXTERN ssize_t weft_read_full(int fd, void *buf, size_t len, off_t off);

/* A short English description of a weft error code (negative errno). */
WEFT_EXTERN const char *weft_strerror(int err);

#ifdef __cplusplus
}
#endif

/* Typed fork-join tasks: WEFT_TASK_n, WEFT_SPAWN, WEFT_SYNC, WEFT_RUN. */
#include "weft/task.h"

#endif /* WEFT_H */
