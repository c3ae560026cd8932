/*
 * io.h: the event-completion layer's internal interface.
 *
 * io.c holds what both backends share: the life of an operation (issue,
 * timeout, cancel, complete, continue), the per-worker timer heap, the
 * per-worker table of operations waiting on each fd, the mailbox through
 * which other threads reach a worker's event state, and the eventfd that
 * wakes a worker waiting inside its backend.  A backend (io_uring.c,
 * io_epoll.c) only starts operations, waits, and reports completions.
 *
 * Threads.  Everything in a worker's struct weft__io belongs to that
 * worker (its owner), except: the mailbox (locked), wake_fd (written by
 * anyone), fdtab[...].npending (read by anyone with a relaxed load, as a
 * hint for weft_close), and, on a shared event state (below), what `lock`
 * guards.
 *
 * Shared event state.  io_uring completes a socket operation only in the
 * thread that submitted it (its task work runs there), but an epoll set can
 * be waited on by any thread.  So an epoll worker's event state is shared:
 * its owner touches it only under io->lock (dropped while it blocks in
 * epoll_wait), and another worker that sees it has not been reaped for
 * WEFT_IO_STALE_NS (its thread is off its core, or in one long task) may
 * take the lock and reap it instead (weft__io_help_peer):
 * the continuations then go to the helper's deque.  Without this, requests
 * whose readiness sits in a descheduled worker's set wait as long as the
 * kernel keeps it off (milliseconds on a loaded machine), while other
 * workers idle or serve their own; Go's netpoller and Tokio's I/O driver
 * are shared for the same reason.  An io_uring worker's state is not
 * shared, and pays no lock.  A peer can only step aside for it: a worker
 * that finds an io_uring peer's ring unreaped for WEFT_IO_STALE_NS with
 * completions owed to it (backend->owed: the kernel has them, only the
 * owner's thread can collect them) calls sched_yield, at most once per
 * WEFT_IO_STALE_NS, so that where the two share a core the owner gets it
 * before the kernel's time slice ends (io_yields).  A hint: where each has
 * a core, the yield returns at once.
 *
 * Invariants
 *   I1  an operation is issued on the worker whose thread started it (its
 *       owner) and completes in that worker's event state: exactly once,
 *       through weft__io_complete, on the owner's thread or (shared state)
 *       on a helper's thread holding the owner's lock.
 *   I2  a pending operation with an fd is on its owner's fdtab list for that
 *       fd; one with a deadline is in its owner's timer heap.  Both are
 *       removed before its continuation is scheduled.
 *   I3  after weft__io_complete the backend never touches the op again.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "atomics.h"
#include "weft.h"

struct weft__worker;
struct weft__fiber;

/* The runtime's part of a weft_op_t, overlaid on its private_ words. */
struct weft__op {
	struct weft__worker *owner;  /* issuing worker (I1) */
	struct weft__fiber *fiber;   /* fiber waiting on it, NULL otherwise */
	weft_op_t *fd_prev, *fd_next; /* owner's list for op->fd (I2) */
	uint64_t deadline;           /* CLOCK_MONOTONIC ns, 0 = none */
	uint32_t heap_idx;           /* in owner's timer heap, or UINT32_MAX */
	int32_t cancel_res;          /* result to report when cancelled: 0 none */
	uint32_t state;              /* enum weft__op_state */
	uint32_t events;             /* backend's use (epoll: interest) */
	uint32_t flags;              /* WEFT__OPF_* */
	uint32_t backend_state;      /* backend's use */
	struct weft_runtime *rt;
	uint32_t *waiter;            /* helping waiter's done flag (io.c) */
	uint32_t hold;               /* remote cancels in flight (io.c, I7) */
	struct weft__multi *multi;   /* ACCEPT_MULTI's delivery queue (io.c) */
};

_Static_assert(sizeof(struct weft__op) <= sizeof(((weft_op_t *)0)->private_),
               "weft_op_t.private_ too small");

static inline struct weft__op *weft__op_priv(weft_op_t *op)
{
	return (struct weft__op *)(void *)op->private_;
}

enum weft__op_state {
	WEFT__OP_IDLE = 0,      /* never started, or completed and delivered */
	WEFT__OP_PENDING,       /* issued, not completed */
	WEFT__OP_DONE,          /* completed, continuation not yet run */
	WEFT__OP_QUEUED,        /* submitted from outside, not yet issued */
	WEFT__OP_QUEUED_CANCEL  /* that, and cancelled: issued as -ECANCELED */
};

#define WEFT__OPF_CANCEL_SENT 1u /* backend cancel already requested */
#define WEFT__OPF_LINKED 2u      /* on its fd's list (io.c) */
#define WEFT__OPF_TRIED 4u       /* a SEND's first try found no room */

/* Backend interface.  All calls on the owner worker's thread except wake,
 * which io.c implements with the eventfd. */
struct weft__io_backend {
	const char *name;
	int id; /* WEFT_IO_URING or WEFT_IO_EPOLL */
	/* Set up this worker's state (w->io->be).  Must arrange that
	 * poll() returns when w->io->wake_fd becomes readable, and sets
	 * w->io->wake_seen when it saw it so; it need not read it (io.c
	 * drains it then).  Returns 0 or a negative errno. */
	int (*init)(struct weft__worker *w, const weft_config_t *cfg);
	void (*fini)(struct weft__worker *w);
	/* Start op (state PENDING, on the fd list already).  May complete it
	 * at once by calling weft__io_complete before returning.  Returns 0,
	 * or a negative errno that io.c turns into the op's result. */
	int (*issue)(struct weft__worker *w, weft_op_t *op);
	/* Ask the backend to end a pending op early: it later (or at once)
	 * calls weft__io_complete(op, -ECANCELED) unless the op completes
	 * first.  Called at most once per op. */
	void (*cancel)(struct weft__worker *w, weft_op_t *op);
	/* Submit what is queued, wait at most timeout_ns (0: do not wait,
	 * <0: no limit) for a completion or a wake, and report completions.
	 * submit false (timeout 0 only): enter the kernel only when there is
	 * something to reap; what is queued then waits for the next poll
	 * that enters anyway.  Returns the number reported, or a negative
	 * errno. */
	int (*poll)(struct weft__worker *w, int64_t timeout_ns, bool submit);
	/* Nonzero when poll(0, submit) may have something to do (completions
	 * not yet reaped; with submit, also unsubmitted work).  Cheap: no
	 * system call. */
	int (*busy)(struct weft__worker *w, bool submit);
	/* Unshared states only (may be NULL): whether completions have come
	 * for w that only w's thread can collect.  Any thread; no system
	 * call; a hint. */
	bool (*owed)(struct weft__worker *w);
};

extern const struct weft__io_backend weft__io_uring_backend;
extern const struct weft__io_backend weft__io_epoll_backend;

/* Per-worker list of the ops waiting on one fd. */
struct weft__fdslot {
	weft_op_t *head;
	uint32_t npending;  /* ops on the list; read by other threads (hint) */
	uint32_t backend;   /* backend's use (epoll: registered events; io_uring: marks) */
	uint32_t gen, seq;  /* backend's use (epoll: the fd generation a
	                     * persistent registration is for; its waits) */
};

#define WEFT__FDCHUNK_LOG2 10

/* A request from another thread, carried by the mailbox. */
struct weft__io_msg {
	struct weft__io_msg *next;
	int kind;   /* WEFT__MSG_* */
	int fd;
	weft_op_t *op;
	uint32_t *acks; /* decremented once handled, or NULL */
};
enum { WEFT__MSG_CANCEL_OP = 1, WEFT__MSG_CANCEL_FD };

struct weft__io {
	const struct weft__io_backend *backend;
	void *be;                     /* the backend's state */
	int wake_fd;                  /* eventfd: a write wakes poll() */
	int64_t npending;             /* pending ops of this worker (read
	                               * by helpers without the lock) */
	uint64_t nready;              /* continuations made runnable, ever */
	weft_op_t *issuing;           /* op inside backend->issue, if any */
	/* Timer heap (min deadline first). */
	weft_op_t **heap;
	uint32_t nheap, heapcap;
	int64_t next_due_ns;          /* heap[0]'s deadline, 0 if empty: the
	                               * owner reads it without the lock */
	/* fd -> ops waiting on it: two levels, chunks allocated on demand and
	 * kept to destroy, so other threads may read npending without locks. */
	struct weft__fdslot **fdtab;
	size_t nchunks;
	/* Requests from other threads. */
	pthread_mutex_t mb_lock;
	struct weft__io_msg *mb_head;
	uint32_t mb_nonempty;
	bool cancelled_all;           /* closing seen: everything cancelled */
	bool in_run;                  /* inside weft__io_run: notify once, after */
	bool wake_seen;               /* the backend saw wake_fd readable: drain it */
	uint64_t last_poll_ns;        /* scheduler.c's last between-task poll */
	unsigned blind_tick;          /* weft__io_blind_due's count */
	/* Shared state (epoll): lock guards all of the above but the
	 * mailbox, wake_fd and the fd counts; shared, npending and
	 * last_reap_ns are read by helpers without it.  Unshared: lock
	 * guards only live, against fini. */
	pthread_mutex_t lock;
	uint32_t shared;              /* helpers may reap it (cleared at fini) */
	uint32_t live;                /* set up, not yet at fini: helpers may
	                               * ask backend->owed (under lock) */
	bool foreign;                 /* a helper reaps it now: the backend
	                               * must leave wake_fd to its owner */
	int64_t last_reap_ns;         /* last weft__io_run's end, any thread */
	int64_t last_yield_ns;        /* this worker's last yield to a peer
	                               * (weft__io_help_peer); owner only */
	void *cpus;                   /* cpu_set_t: the worker's own CPU mask
	                               * (NULL: never pulled; io.c, pulls) */
	uint32_t pulled;              /* a peer narrowed the mask; any thread */
	clockid_t cpu_clock;          /* the worker thread's CPU-time clock */
	int64_t seen_cpu_ns;          /* a peer's last look at that clock, */
	int64_t seen_at_ns;           /* and when (io.c, pulls); any thread */
};

/* Put back w's own CPU mask if a peer pulled it onto its CPU.  Owner. */
void weft__io_unpull_slow(struct weft__worker *w);
static inline void weft__io_unpull(struct weft__worker *w, struct weft__io *io)
{
	if (io && atom_load_32(&io->pulled))
		weft__io_unpull_slow(w);
}

/* Whether a continuation pushed by w should wake a parked worker now: not
 * while w is reaping its completions, since w itself runs one next and
 * weft__io_run wakes one helper afterwards if more are queued. */
static inline bool weft__io_notify_now(const struct weft__io *io)
{
	return !io || !io->in_run;
}

/* Per-runtime setup, on the creating thread: choose the backend
 * (cfg->io, with fallback), filling rt->io_backend and rt->io_note.
 * Returns 0 or a negative errno (only when io_uring was demanded). */
int weft__io_runtime_init(struct weft_runtime *rt);
/* Per-worker setup and teardown, on the worker's thread; then, once the
 * worker is joined, weft__io_worker_free on any thread. */
int weft__io_worker_init(struct weft__worker *w);
void weft__io_worker_fini(struct weft__worker *w);
void weft__io_worker_free(struct weft__worker *w);

/* The scheduler's hooks.  Owner worker. */
/* Whether poll(0) is worth calling now (pending ops, timers, mail). */
bool weft__io_active(struct weft__worker *w);
/* Whether something can be reaped (or, with submit, submitted) without
 * waiting: mail, completions, queued submissions (io_uring: read from
 * shared memory, no system call; epoll cannot tell without one and says
 * false). */
bool weft__io_ready_hint(struct weft__worker *w, bool submit);
/* Whether a busy worker whose backend cannot hint (epoll) should look at
 * the clock for a between-task poll: every 8th call while it has
 * operations pending.  Owner worker. */
bool weft__io_blind_due(struct weft__worker *w);
/* Handle mail, fire due timers, poll the backend for at most timeout_ns
 * (<0: until something happens; the next timer bounds it).  Returns the
 * number of continuations made runnable on w's deque. */
int weft__io_run(struct weft__worker *w, int64_t timeout_ns);
/* The earliest timer deadline of w's event state (CLOCK_MONOTONIC ns, as
 * weft__now_ns), 0 when it has none.  Owner worker; no lock. */
static inline uint64_t weft__io_next_due(const struct weft__io *io)
{
	return io ? (uint64_t)atom_load_64(&io->next_due_ns) : 0;
}
/* weft__io_run(w, 0) for a worker about to look elsewhere and then park:
 * it enters the kernel only to reap, and leaves queued submissions to the
 * park's wait, which submits them in the same system call (io_uring: the
 * submit-only entry was one of three per request of a moderately loaded
 * server). */
int weft__io_reap(struct weft__worker *w);
/* Wake w out of a blocking weft__io_run.  Any thread. */
void weft__io_wake(struct weft__worker *w);
/* If peer has pending operations and has not been reaped for
 * WEFT_IO_STALE_NS: reap its shared event state for it (when its lock is
 * free; the continuations go to self's deque), or, for an unshared one
 * with completions owed, yield self's core, first moving peer onto self's
 * CPU when its CPU clock says it waits for one (io.c, pulls).  Returns how
 * many continuations self got.  self's thread. */
int weft__io_help_peer(struct weft__worker *self, struct weft__worker *peer);
/* A peer that a parking self should watch: one of the next few workers
 * that is running (not parked) with operations pending in a shared event
 * state, or NULL.  Parking is cheap then only if it is short. */
struct weft__worker *weft__io_watch_peer(struct weft__worker *self);
/* For a backend's blocking wait on a shared state: drop the owner's lock
 * around the wait (helpers may reap the state meanwhile, with their own
 * event array).  No-ops on an unshared one. */
void weft__io_wait_begin(struct weft__io *io);
void weft__io_wait_end(struct weft__io *io);

/* Called by a backend: op finished with res. */
void weft__io_complete(struct weft__worker *w, weft_op_t *op, ssize_t res);
/* Called by a backend: the pending ACCEPT_MULTI op accepted fd and goes on
 * (io.c, I9).  Owner worker. */
void weft__io_deliver(struct weft__worker *w, weft_op_t *op, int fd);

/* fd bookkeeping for backends: the slot of fd (NULL if none allocated). */
struct weft__fdslot *weft__io_fdslot(struct weft__worker *w, int fd);

uint64_t weft__now_ns(void);

/* io_epoll.c: weft is about to close fd (weft_close, a CLOSE op), so the
 * number's next file is another one.  Any thread. */
void weft__epoll_fd_closing(int fd);

/* For io_api.c.  Owner worker.  Start op on w; its continuation is the
 * fiber to wake, else *waiter set to 1, else op->cb as a task.  Returns 1
 * when op completed during the call (no continuation then: the caller
 * goes on with op->result), 0 when it is pending.  tried: the caller
 * already made a SEND's first try (weft__io_send_first) and it found no
 * room. */
int weft__io_start(struct weft__worker *w, weft_op_t *op, struct weft__fiber *fiber, uint32_t *waiter,
                   bool tried);
/* A SEND's first try, before any bookkeeping (io.c, I10): send() with
 * MSG_DONTWAIT | MSG_NOSIGNAL added, retried on EINTR.  Returns its result
 * or -EAGAIN (no room just now; EWOULDBLOCK too).  Sets errno on failure;
 * touches nothing else.  Any thread. */
ssize_t weft__io_send_try(int fd, const void *buf, size_t len, int flags);
/* A SEND's first try on w (the calling worker, with an event state),
 * counted in its stats, unless the runtime is closing: weft_send's fast
 * path, with no op at all, and weft__io_start's.  Returns the result, or
 * -EAGAIN when the caller must go on with a SEND op (the try found no
 * room: weft__io_start with tried; or the runtime is closing, which then
 * ends it -ECANCELED).  errno is left as it was. */
ssize_t weft__io_send_first(struct weft__worker *w, int fd, const void *buf, size_t len, int flags);
/* Cancel op (pending on w) with reason.  Owner worker. */
void weft__io_cancel_local(struct weft__worker *w, weft_op_t *op, int reason);
/* Ask op's owner to cancel it.  Any thread.  Returns 0 or -ENOMEM. */
int weft__io_cancel_remote(weft_op_t *op);
/* Cancel every op waiting on fd on rt's workers: the caller's own at once,
 * the others' by mail, each counted in *acks until handled.  Any thread.
 * Returns 0 or -ENOMEM (some could not be asked). */
int weft__io_cancel_fd(struct weft_runtime *rt, int fd, uint32_t *acks);
/* Run the continuation of op, which weft__io_start just completed (fiber,
 * waiter or callback task).  Owner worker. */
void weft__io_continue(struct weft__worker *w, weft_op_t *op);
/* The task that runs a callback op's cb. */
void weft__io_cb_task(void *op);

#endif /* WEFT_IO_H */
