/*
 * io.c: the event-completion core shared by both backends.
 *
 * The life of an operation (weft_op_t), on its owner worker:
 *
 *   start     state PENDING; a deadline goes into the timer heap; an fd op
 *             goes on the fd's list; SLEEP goes nowhere else; then the
 *             backend's issue().  A backend may complete at once (epoll's
 *             first try often does): the caller then continues inline,
 *             without a suspension or a task.
 *   timeout   the heap's earliest deadline passed: the op is cancelled with
 *             reason -ETIMEDOUT (a SLEEP simply completes with 0).
 *   cancel    reason -ECANCELED; backend->cancel() at most once; the op
 *             completes later (io_uring) or at once (epoll).  A request from
 *             another thread goes through the owner's mailbox.
 *   complete  weft__io_complete: a cancelled op's -ECANCELED/-EINTR becomes
 *             its reason; off the heap and the fd list; state DONE; then the
 *             continuation: wake the fiber (fiber.c, I3), set the helping
 *             waiter's flag, or push a task that runs op->cb.
 *
 * Invariants (and io.h's I1-I3)
 *   I4  npending counts the ops in state PENDING owned by this worker; the
 *       worker blocks in its backend only via weft__io_run, whose timeout
 *       never passes the earliest deadline.
 *   I5  once the runtime is closing, the first weft__io_run on each worker
 *       cancels everything pending there, and weft__io_start completes new
 *       ops with -ECANCELED: so destroy's wait for fibers ends.
 *   I6  mail is handled only by the owner (or, on a shared state, by a
 *       helper holding its lock); a CANCEL_OP is acted on only if the op is
 *       still PENDING (it may have completed since it was posted).
 *   I10 on a shared state (io.h), every function here that touches a
 *       worker's state holds its lock, taken by the public entry points
 *       (start, cancel_local, continue, run, cancel_fd's own part) and
 *       assumed by the static helpers they call; a continuation made by a
 *       helper goes to the helper's deque (push_cont, fiber.c's make_ready
 *       on the calling worker), so no thread pushes on another's deque.
 *       A SEND is first tried before the lock is taken and before any
 *       bookkeeping, on either kind of state (weft__io_send_try): the op
 *       is not PENDING yet, so nothing else can reach it; weft_send makes
 *       that try with no op at all (weft__io_send_first).  On an unshared
 *       state the lock guards only `live`: a peer reads the backend's
 *       owed() hint (words the kernel writes in the ring, read relaxed)
 *       under it, so fini cannot unmap the ring meanwhile.
 *   I7  an op is not handed to its continuation (which may free it) while
 *       a remote cancel still refers to it.  The canceller adds 1 to hold,
 *       then re-reads state; the completer stores DONE, then reads hold:
 *       both are full barriers (Dekker), so either the canceller sees DONE
 *       and backs out (hold -1, no message), or the completer sees hold > 0
 *       and handles its mail until hold is 0 again.  The owner drops hold
 *       when it takes the message, before acting on it: from then on only
 *       the owner itself can complete the op.  Mail is taken one message at
 *       a time, so a completer waiting inside handle_mail still finds the
 *       message that holds its op.
 *   I8  an op submitted from outside is QUEUED until a worker issues it;
 *       a cancel then only marks it (QUEUED_CANCEL), and the issue
 *       completes it at once with -ECANCELED.
 *   I9  an ACCEPT_MULTI op stays PENDING while its backend hands each
 *       accepted fd to weft__io_deliver, which queues it in op's multi
 *       record; its completion only records the final result there.  Its
 *       callbacks run only in its delivery task, of which at most one is
 *       queued or running (multi.running, set and cleared under the
 *       record's lock together with the queue): so they never overlap and
 *       see the fds in order.  The task delivers the final result when the
 *       queue is empty and the op has ended, and nothing touches op after
 *       that callback; the op's count in outstanding is held until then.
 *
 * Waking.  Each worker has an eventfd that its backend watches.  A parked
 * worker (park.c) sleeps in weft__io_run; its waker writes the eventfd
 * instead of a futex.  A write that arrives while the worker is not
 * sleeping leaves the eventfd readable, so the next wait returns at once:
 * no wake-up is lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "worker.h"

#define NO_HEAP UINT32_MAX

/* The fds an ACCEPT_MULTI op accepted that its callback has not yet seen,
 * oldest first, and its final result once it ended. */
struct weft__multi {
	pthread_mutex_t lock;
	int *fds;      /* ring of cap (a power of two) entries */
	uint32_t head, n, cap;
	bool running;  /* the delivery task is queued or running */
	bool ended;    /* op completed: final is its last result */
	ssize_t final;
};

#define MULTI_CAP0 16u /* fds a multi record holds before it grows */

/* The fd table covers fds below this (4M): two levels of 1024. */
#define FD_MAX (1UL << 22)

uint64_t weft__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- backend choice ---------------------------------------------------- */

static void *probe_thread(void *arg)
{
	struct io_uring ring;
	int *rc = arg;

	*rc = io_uring_queue_init(2, &ring, 0);
	if (*rc == 0)
		io_uring_queue_exit(&ring);
	return NULL;
}

/* Whether io_uring can be set up here.  WEFT_IO_INJECT_FAIL=1 makes it
 * fail as on a kernel without it (for the fallback's tests).  The probe
 * ring lives and dies on a thread of its own: tearing a ring down queues
 * kernel work on the thread that owned it, which would otherwise interrupt
 * the caller's next blocking system call with EINTR. */
static int probe_uring(void)
{
	const char *inject = getenv("WEFT_IO_INJECT_FAIL");
	sigset_t all, old;
	pthread_t t;
	int rc = -ENOSYS, made;

	if (inject && inject[0] == '1')
		return -ENOSYS;
	sigfillset(&all); /* the program's signals stay on its threads */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	made = pthread_create(&t, NULL, probe_thread, &rc) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (made)
		pthread_join(t, NULL);
	else
		probe_thread(&rc);
	return rc;
}

int weft__io_runtime_init(struct weft_runtime *rt)
{
	int rc;

	rt->io_note[0] = '\0';
	if (rt->cfg.io == WEFT_IO_EPOLL) {
		rt->io_backend = &weft__io_epoll_backend;
		return 0;
	}
	rc = probe_uring();
	if (rc == 0) {
		rt->io_backend = &weft__io_uring_backend;
		return 0;
	}
	if (rt->cfg.io == WEFT_IO_URING)
		return rc;
	snprintf(rt->io_note, sizeof rt->io_note, "io_uring unavailable (setup: %s); using epoll", strerror(-rc));
	rt->io_backend = &weft__io_epoll_backend;
	return 0;
}

/* ---- per-worker state ---------------------------------------------------- */

int weft__io_worker_init(struct weft__worker *w)
{
	struct weft_runtime *rt = w->rt;
	struct weft__io *io = calloc(1, sizeof(*io));
	struct rlimit rl;
	size_t maxfd = FD_MAX;
	int rc;

	if (!io)
		return -ENOMEM;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FD_MAX)
		maxfd = rl.rlim_max < 1024 ? 1024 : (size_t)rl.rlim_max;
	io->nchunks = (maxfd + (1U << WEFT__FDCHUNK_LOG2) - 1) >> WEFT__FDCHUNK_LOG2;
	io->fdtab = calloc(io->nchunks, sizeof(*io->fdtab));
	io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!io->fdtab || io->wake_fd < 0) {
		rc = io->wake_fd < 0 ? -errno : -ENOMEM;
		if (io->wake_fd >= 0)
			close(io->wake_fd);
		free(io->fdtab);
		free(io);
		return rc;
	}
	pthread_mutex_init(&io->mb_lock, NULL);
	pthread_mutex_init(&io->lock, NULL);
	io->cpus = malloc(sizeof(cpu_set_t));
	if (io->cpus && (pthread_getaffinity_np(pthread_self(), sizeof(cpu_set_t), io->cpus) != 0 ||
	                 pthread_getcpuclockid(pthread_self(), &io->cpu_clock) != 0)) {
		free(io->cpus);
		io->cpus = NULL; /* no pulls for this worker */
	}
	io->backend = rt->io_backend;
	w->io = io;
	rc = io->backend->init(w, &rt->cfg);
	if (rc && io->backend == &weft__io_uring_backend && rt->cfg.io == WEFT_IO_AUTO) {
		/* The probe passed but this ring did not (memlock limit, say):
		 * this worker runs on epoll; the others need not. */
		pthread_mutex_lock(&rt->drain_lock);
		if (!rt->io_note[0])
			snprintf(rt->io_note, sizeof rt->io_note,
			         "io_uring setup failed on worker %u (%s); it uses epoll", w->index, strerror(-rc));
		pthread_mutex_unlock(&rt->drain_lock);
		io->backend = &weft__io_epoll_backend;
		rc = io->backend->init(w, &rt->cfg);
	}
	if (rc == 0) {
		/* Published to helpers by the worker's count in io_init_left. */
		atom_store_64(&io->last_reap_ns, (int64_t)weft__now_ns());
		io->shared = io->backend == &weft__io_epoll_backend;
		io->live = 1;
	}
	if (rc) {
		w->io = NULL;
		pthread_mutex_destroy(&io->lock);
		pthread_mutex_destroy(&io->mb_lock);
		close(io->wake_fd);
		free(io->fdtab);
		free(io);
	}
	return rc;
}

void weft__io_worker_fini(struct weft__worker *w)
{
	struct weft__io *io = w->io;

	if (!io)
		return;
	/* Helpers keep away from here on (they test shared or live under
	 * lock). */
	pthread_mutex_lock(&io->lock);
	atom_store_32(&io->shared, 0);
	io->live = 0;
	pthread_mutex_unlock(&io->lock);
	io->backend->fini(w);
	free(io->heap);
	io->heap = NULL;
}

/* What other threads may still touch (wake_fd for a late wake-up, the fd
 * table's counts, the mailbox) goes only once the worker is joined. */
void weft__io_worker_free(struct weft__worker *w)
{
	struct weft__io *io = w->io;
	struct weft__io_msg *m, *next;
	size_t i;

	if (!io)
		return;
	for (m = io->mb_head; m; m = next) {
		next = m->next;
		if (m->acks)
			atom_faa_32(m->acks, (uint32_t)-1);
		free(m);
	}
	for (i = 0; i < io->nchunks; i++)
		free(io->fdtab[i]);
	free(io->cpus);
	free(io->fdtab);
	close(io->wake_fd);
	pthread_mutex_destroy(&io->mb_lock);
	pthread_mutex_destroy(&io->lock);
	free(io);
	w->io = NULL;
}

/* ---- the timer heap (min-heap on deadline) -------------------------------- */

static inline uint64_t deadline(weft_op_t *op) { return weft__op_priv(op)->deadline; }

static void heap_set(struct weft__io *io, uint32_t i, weft_op_t *op)
{
	io->heap[i] = op;
	weft__op_priv(op)->heap_idx = i;
}

static void heap_up(struct weft__io *io, uint32_t i)
{
	weft_op_t *op = io->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (deadline(io->heap[parent]) <= deadline(op))
			break;
		heap_set(io, i, io->heap[parent]);
		i = parent;
	}
	heap_set(io, i, op);
}

static void heap_down(struct weft__io *io, uint32_t i)
{
	weft_op_t *op = io->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= io->nheap)
			break;
		if (c + 1 < io->nheap && deadline(io->heap[c + 1]) < deadline(io->heap[c]))
			c++;
		if (deadline(op) <= deadline(io->heap[c]))
			break;
		heap_set(io, i, io->heap[c]);
		i = c;
	}
	heap_set(io, i, op);
}

/* After every change to the heap: its earliest deadline, for the
 * scheduler's between-task look (weft__io_timer_due). */
static void heap_note(struct weft__io *io)
{
	atom_store_64(&io->next_due_ns, io->nheap ? (int64_t)deadline(io->heap[0]) : 0);
}

static int heap_add(struct weft__io *io, weft_op_t *op)
{
	if (io->nheap == io->heapcap) {
		uint32_t cap = io->heapcap ? 2 * io->heapcap : 64;
		weft_op_t **h = realloc(io->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		io->heap = h;
		io->heapcap = cap;
	}
	io->heap[io->nheap] = op;
	heap_up(io, io->nheap++);
	heap_note(io);
	return 0;
}

static void heap_del(struct weft__io *io, weft_op_t *op)
{
	uint32_t i = weft__op_priv(op)->heap_idx;
	weft_op_t *last = io->heap[--io->nheap];

	weft__op_priv(op)->heap_idx = NO_HEAP;
	if (i != io->nheap) {
		heap_set(io, i, last);
		heap_up(io, i);
		heap_down(io, weft__op_priv(last)->heap_idx);
	}
	heap_note(io);
}

/* ---- the fd table ---------------------------------------------------------- */

struct weft__fdslot *weft__io_fdslot(struct weft__worker *w, int fd)
{
	struct weft__io *io = w->io;
	struct weft__fdslot *chunk;

	if (fd < 0 || (size_t)fd >> WEFT__FDCHUNK_LOG2 >= io->nchunks)
		return NULL;
	chunk = atom_load_acq_ptr((void *const *)&io->fdtab[(size_t)fd >> WEFT__FDCHUNK_LOG2]);
	return chunk ? &chunk[fd & ((1 << WEFT__FDCHUNK_LOG2) - 1)] : NULL;
}

static struct weft__fdslot *fdslot_get(struct weft__worker *w, int fd)
{
	struct weft__io *io = w->io;
	struct weft__fdslot *s = weft__io_fdslot(w, fd);

	if (!s && fd >= 0 && (size_t)fd >> WEFT__FDCHUNK_LOG2 < io->nchunks) {
		struct weft__fdslot *chunk = calloc(1U << WEFT__FDCHUNK_LOG2, sizeof(*chunk));
		if (!chunk)
			return NULL;
		/* Release: other threads read npending through it. */
		atom_store_rel_ptr((void **)&io->fdtab[(size_t)fd >> WEFT__FDCHUNK_LOG2], chunk);
		s = weft__io_fdslot(w, fd);
	}
	return s;
}

static void fd_link(struct weft__fdslot *s, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);

	p->fd_prev = NULL;
	p->fd_next = s->head;
	if (s->head)
		weft__op_priv(s->head)->fd_prev = op;
	s->head = op;
	p->flags |= WEFT__OPF_LINKED;
	atom_store_32(&s->npending, s->npending + 1);
}

static void fd_unlink(struct weft__worker *w, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);
	struct weft__fdslot *s = weft__io_fdslot(w, op->fd);

	if (p->fd_prev)
		weft__op_priv(p->fd_prev)->fd_next = p->fd_next;
	else
		s->head = p->fd_next;
	if (p->fd_next)
		weft__op_priv(p->fd_next)->fd_prev = p->fd_prev;
	p->fd_prev = p->fd_next = NULL;
	p->flags &= ~WEFT__OPF_LINKED;
	atom_store_32(&s->npending, s->npending - 1);
}

/* ---- the shared state's lock ----------------------------------------------- */

/* Owner side.  shared changes only on the owner's thread (init, fini). */
static inline void io_lock(struct weft__io *io)
{
	if (io->shared)
		pthread_mutex_lock(&io->lock);
}

static inline void io_unlock(struct weft__io *io)
{
	if (io->shared)
		pthread_mutex_unlock(&io->lock);
}

void weft__io_wait_begin(struct weft__io *io)
{
	io_unlock(io);
}

void weft__io_wait_end(struct weft__io *io)
{
	io_lock(io);
}

static inline void npending_add(struct weft__io *io, int64_t d)
{
	atom_store_64(&io->npending, io->npending + d); /* under the lock */
}

/* ---- start, cancel, complete ---------------------------------------------- */

static void handle_mail(struct weft__worker *w);
static void cancel_local(struct weft__worker *w, weft_op_t *op, int reason);
static void io_continue(struct weft__worker *w, weft_op_t *op);
static struct weft__multi *multi_new(void);
static void multi_push(struct weft__worker *w, weft_op_t *op, int fd);

/* I7: wait until no remote cancel refers to op.  A canceller that holds it
 * is either about to post its message (which handle_mail takes) or about to
 * back out: both are a few instructions away on another thread. */
static void wait_holds(struct weft__worker *w, weft_op_t *op)
{
	uint32_t *hold = &weft__op_priv(op)->hold;

	while (atom_load_32(hold)) {
		if (atom_load_32(&w->io->mb_nonempty))
			handle_mail(w);
		else
			sched_yield();
	}
}

static inline bool on_fd_list(const weft_op_t *op)
{
	return op->opcode != WEFT_OP_SLEEP && op->fd >= 0;
}

ssize_t weft__io_send_try(int fd, const void *buf, size_t len, int flags)
{
	ssize_t n;

	do
		n = send(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

ssize_t weft__io_send_first(struct weft__worker *w, int fd, const void *buf, size_t len, int flags)
{
	int saved = errno;
	ssize_t n;

	if (atom_load_32(&w->rt->closing))
		return -EAGAIN;
	n = weft__io_send_try(fd, buf, len, flags);
	errno = saved;
	if (n != -EAGAIN)
		WEFT_STAT_INC(w, io_ops);
	return n;
}

int weft__io_start(struct weft__worker *w, weft_op_t *op, struct weft__fiber *fiber, uint32_t *waiter,
                   bool tried)
{
	struct weft__io *io = w->io;
	struct weft__op *p = weft__op_priv(op);
	struct weft__fdslot *slot = NULL;
	int rc;

	uint32_t was;

	/* Everything but state and hold, which other threads may touch. */
	p->owner = w;
	p->fiber = fiber;
	p->fd_prev = p->fd_next = NULL;
	p->deadline = 0;
	p->heap_idx = NO_HEAP;
	p->cancel_res = 0;
	p->events = 0;
	p->flags = 0;
	p->backend_state = 0;
	p->rt = w->rt;
	p->waiter = waiter;
	p->multi = op->opcode == WEFT_OP_ACCEPT_MULTI ? multi_new() : NULL;
	if (op->opcode == WEFT_OP_SEND && !tried && atom_load_32(&p->state) == WEFT__OP_IDLE) {
		/* Not yet PENDING: no helper or canceller can reach op.  A
		 * result here spares the lock (shared) and all bookkeeping.
		 * While closing it is not tried, and I5 ends it below. */
		ssize_t res = weft__io_send_first(w, op->fd, op->buf, op->len, op->flags);
		if (res != -EAGAIN) {
			op->result = res;
			atom_store_32(&p->state, WEFT__OP_DONE);
			return 1;
		}
		tried = true;
	}
	if (tried)
		p->flags |= WEFT__OPF_TRIED;
	io_lock(io);
	/* Publishes the fields above to a remote canceller (a full barrier). */
	was = atom_fas_32(&p->state, WEFT__OP_PENDING);
	npending_add(io, 1);
	WEFT_STAT_INC(w, io_ops);
	io->issuing = op;
	if (was == WEFT__OP_QUEUED_CANCEL || atom_load_32(&w->rt->closing)) {
		weft__io_complete(w, op, -ECANCELED); /* I8, I5 */
		goto out;
	}
	if (op->opcode == WEFT_OP_ACCEPT_MULTI && !p->multi) {
		weft__io_complete(w, op, -ENOMEM); /* an ordinary callback op now */
		goto out;
	}
	if (on_fd_list(op)) {
		slot = fdslot_get(w, op->fd);
		if (!slot) {
			weft__io_complete(w, op, (size_t)op->fd >> WEFT__FDCHUNK_LOG2 >= io->nchunks ? -EBADF : -ENOMEM);
			goto out;
		}
		fd_link(slot, op);
	}
	if (op->timeout_ns || op->opcode == WEFT_OP_SLEEP) {
		uint64_t now = weft__now_ns();
		p->deadline = op->timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + op->timeout_ns;
		if (heap_add(io, op) != 0) {
			weft__io_complete(w, op, -ENOMEM);
			goto out;
		}
	}
	if (op->opcode == WEFT_OP_SLEEP) {
		if (op->timeout_ns == 0)
			weft__io_complete(w, op, 0);
		goto out;
	}
	if (op->fd < 0) {
		weft__io_complete(w, op, -EBADF);
		goto out;
	}
	rc = io->backend->issue(w, op);
	if (rc < 0 && p->state == WEFT__OP_PENDING)
		weft__io_complete(w, op, rc);
out:
	io->issuing = NULL;
	if (p->state != WEFT__OP_DONE) {
		io_unlock(io);
		return 0;
	}
	wait_holds(w, op); /* I7: the caller may free op once we return */
	io_unlock(io);
	return 1;
}

void weft__io_cancel_local(struct weft__worker *w, weft_op_t *op, int reason)
{
	io_lock(w->io);
	cancel_local(w, op, reason);
	io_unlock(w->io);
}

/* Under the lock of a shared state. */
static void cancel_local(struct weft__worker *w, weft_op_t *op, int reason)
{
	struct weft__op *p = weft__op_priv(op);

	if (p->state != WEFT__OP_PENDING || p->owner != w)
		return;
	if (op->opcode == WEFT_OP_SLEEP) {
		weft__io_complete(w, op, reason);
		return;
	}
	if (!p->cancel_res)
		p->cancel_res = reason;
	if (p->flags & WEFT__OPF_CANCEL_SENT)
		return;
	p->flags |= WEFT__OPF_CANCEL_SENT;
	w->io->backend->cancel(w, op);
}

void weft__io_cb_task(void *arg)
{
	weft_op_t *op = arg;
	struct weft_runtime *rt = weft__op_priv(op)->rt;

	atom_store_32(&weft__op_priv(op)->state, WEFT__OP_IDLE);
	op->cb(op);
	weft__outstanding_put(rt, 1); /* the count weft_op_submit took */
}

void weft__io_complete(struct weft__worker *w, weft_op_t *op, ssize_t res)
{
	struct weft__io *io = w->io;
	struct weft__op *p = weft__op_priv(op);

	if (p->state != WEFT__OP_PENDING)
		return;
	if (p->cancel_res && (res == -ECANCELED || res == -EINTR))
		res = p->cancel_res;
	if (p->heap_idx != NO_HEAP)
		heap_del(io, op);
	if (p->flags & WEFT__OPF_LINKED)
		fd_unlink(w, op);
	npending_add(io, -1);
	if (p->multi)
		p->multi->final = res; /* op->result is its delivery task's (I9) */
	else
		op->result = res;
	(void)atom_fas_32(&p->state, WEFT__OP_DONE); /* I7: a full barrier */
	if (op == io->issuing)
		return; /* weft__io_start's caller continues inline */
	wait_holds(w, op);
	io_continue(w, op);
}

/* Queue fn(op) as a task on the calling worker's deque (w's owner or a
 * helper).  Under w's lock. */
static void push_cont(struct weft__worker *w, weft_task_fn fn, weft_op_t *op)
{
	struct weft__worker *self = weft__self_fresh();
	struct weft__task t = { fn, op, NULL };

	w->io->nready++;
	if (weft__deque_push(&self->dq, &t) == 0) {
		WEFT_STAT_INC(self, resumes);
		if (weft__io_notify_now(self->io))
			weft__notify(self->rt, &self->rt->idle);
	} else {
		fn(op); /* no memory to queue it: run it here */
	}
}

void weft__io_continue(struct weft__worker *w, weft_op_t *op)
{
	io_lock(w->io);
	io_continue(w, op);
	io_unlock(w->io);
}

/* Under w's lock (shared state). */
static void io_continue(struct weft__worker *w, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);

	if (p->multi) {
		multi_push(w, op, -1); /* the end; the fds before it go first */
	} else if (p->fiber) {
		w->io->nready++;
		weft__fiber_wake(p->fiber);
	} else if (p->waiter) {
		w->io->nready++;
		atom_store_32(p->waiter, 1);
	} else {
		push_cont(w, weft__io_cb_task, op);
	}
}

/* ---- ACCEPT_MULTI: one op, many results (I9) ---------------------------------- */

static struct weft__multi *multi_new(void)
{
	struct weft__multi *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->fds = malloc(MULTI_CAP0 * sizeof(*m->fds));
	if (!m->fds) {
		free(m);
		return NULL;
	}
	m->cap = MULTI_CAP0;
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

static void multi_free(struct weft__multi *m)
{
	pthread_mutex_destroy(&m->lock);
	free(m->fds);
	free(m);
}

/* Double the ring, oldest fd first.  Under m->lock.  0 or -ENOMEM. */
static int multi_grow(struct weft__multi *m)
{
	int *fds = malloc(2 * (size_t)m->cap * sizeof(*fds));
	uint32_t i;

	if (!fds)
		return -ENOMEM;
	for (i = 0; i < m->n; i++)
		fds[i] = m->fds[(m->head + i) & (m->cap - 1)];
	free(m->fds);
	m->fds = fds;
	m->head = 0;
	m->cap *= 2;
	return 0;
}

/* The delivery task: the queued fds, one callback each, then (once the op
 * ended and none is left) the final result.  Any worker. */
static void multi_task(void *arg)
{
	weft_op_t *op = arg;
	struct weft__op *p = weft__op_priv(op);
	struct weft__multi *m = p->multi;
	struct weft_runtime *rt = p->rt;

	for (;;) {
		pthread_mutex_lock(&m->lock);
		if (m->n) {
			int fd = m->fds[m->head];
			m->head = (m->head + 1) & (m->cap - 1);
			m->n--;
			pthread_mutex_unlock(&m->lock);
			op->result = fd;
			op->cb(op);
			continue;
		}
		if (!m->ended) {
			m->running = false; /* the next fd queues a new task */
			pthread_mutex_unlock(&m->lock);
			return;
		}
		pthread_mutex_unlock(&m->lock);
		break;
	}
	op->result = m->final;
	p->multi = NULL;
	multi_free(m);
	atom_store_32(&p->state, WEFT__OP_IDLE);
	op->cb(op);
	weft__outstanding_put(rt, 1); /* the count weft_op_submit took */
}

/* Queue fd, or (fd < 0) mark the end; start the delivery task unless it
 * runs.  Under w's lock (shared state). */
static void multi_push(struct weft__worker *w, weft_op_t *op, int fd)
{
	struct weft__multi *m = weft__op_priv(op)->multi;
	bool start;

	pthread_mutex_lock(&m->lock);
	if (fd >= 0) {
		if (m->n == m->cap && multi_grow(m) != 0) {
			pthread_mutex_unlock(&m->lock);
			close(fd); /* no memory to keep it: the peer sees it closed */
			return;
		}
		m->fds[(m->head + m->n++) & (m->cap - 1)] = fd;
	} else {
		m->ended = true;
	}
	start = !m->running;
	m->running = true;
	pthread_mutex_unlock(&m->lock);
	if (start)
		push_cont(w, multi_task, op);
}

void weft__io_deliver(struct weft__worker *w, weft_op_t *op, int fd)
{
	multi_push(w, op, fd);
}

/* ---- mail from other threads ------------------------------------------------ */

static int post(struct weft__worker *w, int kind, int fd, weft_op_t *op, uint32_t *acks)
{
	struct weft__io *io = w->io;
	struct weft__io_msg *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->kind = kind;
	m->fd = fd;
	m->op = op;
	m->acks = acks;
	if (acks)
		atom_faa_32(acks, 1);
	pthread_mutex_lock(&io->mb_lock);
	m->next = io->mb_head;
	io->mb_head = m;
	atom_store_32(&io->mb_nonempty, 1);
	pthread_mutex_unlock(&io->mb_lock);
	weft__io_wake(w);
	return 0;
}

static void cancel_fd_local(struct weft__worker *w, int fd)
{
	struct weft__fdslot *s = weft__io_fdslot(w, fd);
	weft_op_t *op, *next;

	for (op = s ? s->head : NULL; op; op = next) {
		next = weft__op_priv(op)->fd_next;
		cancel_local(w, op, -ECANCELED);
	}
}

int weft__io_cancel_remote(weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);
	int rc;

	(void)atom_faa_32(&p->hold, 1); /* I7: a full barrier */
	if (atom_load_32(&p->state) != WEFT__OP_PENDING) {
		(void)atom_faa_32(&p->hold, (uint32_t)-1);
		return -EALREADY;
	}
	/* PENDING and held: owner is stable until the message is taken. */
	rc = post(p->owner, WEFT__MSG_CANCEL_OP, -1, op, NULL);
	if (rc)
		(void)atom_faa_32(&p->hold, (uint32_t)-1);
	return rc;
}

int weft__io_cancel_fd(struct weft_runtime *rt, int fd, uint32_t *acks)
{
	struct weft__worker *self = weft__self_fresh();
	unsigned i;
	int rc = 0;

	for (i = 0; i < rt->nworkers; i++) {
		struct weft__worker *w = &rt->workers[i];
		struct weft__fdslot *s;
		if (!w->io)
			continue;
		if (w == self) {
			io_lock(w->io);
			cancel_fd_local(w, fd);
			io_unlock(w->io);
			continue;
		}
		s = weft__io_fdslot(w, fd);
		if (s && atom_load_32(&s->npending) && post(w, WEFT__MSG_CANCEL_FD, fd, NULL, acks))
			rc = -ENOMEM;
	}
	return rc;
}

static void handle_mail(struct weft__worker *w)
{
	struct weft__io *io = w->io;
	struct weft__io_msg *m;

	/* One message at a time (I7): acting on one may complete an op whose
	 * completer then takes the next ones from here, nested. */
	for (;;) {
		pthread_mutex_lock(&io->mb_lock);
		m = io->mb_head;
		if (m)
			io->mb_head = m->next;
		if (!io->mb_head)
			atom_store_32(&io->mb_nonempty, 0);
		pthread_mutex_unlock(&io->mb_lock);
		if (!m)
			return;
		if (m->kind == WEFT__MSG_CANCEL_OP) {
			weft_op_t *op = m->op;
			struct weft__op *p = weft__op_priv(op);
			bool pending = atom_load_32(&p->state) == WEFT__OP_PENDING;
			/* I7: after this only we can complete op, and we do
			 * not until weft__io_cancel_local below. */
			(void)atom_faa_32(&p->hold, (uint32_t)-1);
			if (pending)
				cancel_local(w, op, -ECANCELED);
		} else {
			cancel_fd_local(w, m->fd);
		}
		if (m->acks)
			atom_faa_32(m->acks, (uint32_t)-1);
		free(m);
	}
}

/* ---- the scheduler's hooks ------------------------------------------------- */

/* I5: cancel everything pending on w. */
static void cancel_all(struct weft__worker *w)
{
	struct weft__io *io = w->io;
	size_t c;
	unsigned i;

	io->cancelled_all = true;
	/* Timed ops leave the heap here; fd ops are cancelled below. */
	while (io->nheap) {
		weft_op_t *op = io->heap[0];
		if (op->opcode == WEFT_OP_SLEEP) {
			weft__io_complete(w, op, -ECANCELED);
		} else {
			heap_del(io, op);
			cancel_local(w, op, -ECANCELED);
		}
	}
	for (c = 0; c < io->nchunks; c++) {
		if (!io->fdtab[c])
			continue;
		for (i = 0; i < (1U << WEFT__FDCHUNK_LOG2); i++)
			if (io->fdtab[c][i].head)
				cancel_fd_local(w, (int)((c << WEFT__FDCHUNK_LOG2) + i));
	}
}

static void fire_timers(struct weft__worker *w, uint64_t now)
{
	struct weft__io *io = w->io;

	while (io->nheap && deadline(io->heap[0]) <= now) {
		weft_op_t *op = io->heap[0];
		if (op->opcode == WEFT_OP_SLEEP) {
			weft__io_complete(w, op, 0);
		} else {
			heap_del(io, op);
			cancel_local(w, op, -ETIMEDOUT);
		}
	}
}

bool weft__io_active(struct weft__worker *w)
{
	struct weft__io *io = w->io;

	if (!io)
		return false;
	return atom_load_64(&io->npending) || atom_load_32(&io->mb_nonempty) || io->backend->busy(w, true) ||
	       (!io->cancelled_all && atom_load_32(&w->rt->closing));
}

bool weft__io_blind_due(struct weft__worker *w)
{
	struct weft__io *io = w->io;

	return io && io->shared && (++io->blind_tick & 7) == 0 && atom_load_64(&io->npending);
}

bool weft__io_ready_hint(struct weft__worker *w, bool submit)
{
	struct weft__io *io = w->io;

	return io && (atom_load_32(&io->mb_nonempty) || io->backend->busy(w, submit));
}

/* weft__io_run's work, on w's event state, by its owner or (self != w,
 * timeout 0) a helper.  Under w's lock (shared state). */
static int run_locked(struct weft__worker *w, struct weft__worker *self, int64_t timeout_ns, bool submit)
{
	struct weft__io *io = w->io;
	uint64_t start = io->nready, end;
	int rc;

	if (self == w)
		weft__io_unpull(w, io);
	self->io->in_run = true; /* self's own flag: its pushes wait (push_cont) */
	io->foreign = self != w;
	if (atom_load_32(&io->mb_nonempty))
		handle_mail(w);
	if (!io->foreign && !io->cancelled_all && atom_load_32(&w->rt->closing))
		cancel_all(w);
	if (io->nheap) {
		uint64_t now = weft__now_ns();
		fire_timers(w, now);
		if (io->nheap && timeout_ns != 0) {
			uint64_t d = deadline(io->heap[0]);
			int64_t left = d > now ? (int64_t)(d - now) : 0;
			if (timeout_ns < 0 || left < timeout_ns)
				timeout_ns = left;
		}
	}
	if (io->nready != start)
		timeout_ns = 0;
	rc = io->backend->poll(w, timeout_ns, submit || timeout_ns != 0);
	if (io->wake_seen) {
		uint64_t v;
		/* Reset the wake-up (the eventfd is non-blocking), only once
		 * the backend saw it fire: a read after every wait was one
		 * system call per park that nearly always found nothing. */
		io->wake_seen = false;
		if (read(io->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
			rc = rc < 0 ? rc : -errno;
	}
	if (atom_load_32(&io->mb_nonempty))
		handle_mail(w);
	end = weft__now_ns();
	if (io->nheap)
		fire_timers(w, end);
	(void)rc; /* a failed wait is retried by the caller's loop */
	io->foreign = false;
	atom_store_64(&io->last_reap_ns, (int64_t)end);
	self->io->in_run = false;
	/* self runs one task next; wake a helper for the rest (Tokio's rule).
	 * A full fence for P2: self may be parked (its park waits in here),
	 * and a parked producer gets no membarrier's help (park.c, W5). */
	if (io->nready != start && weft__deque_size_hint(&self->dq) > 1) {
		atom_fence_sc();
		weft__notify(self->rt, &self->rt->idle);
	}
	return (int)(io->nready - start);
}

int weft__io_run(struct weft__worker *w, int64_t timeout_ns)
{
	int n;

	io_lock(w->io);
	n = run_locked(w, w, timeout_ns, true);
	io_unlock(w->io);
	return n;
}

int weft__io_reap(struct weft__worker *w)
{
	int n;

	io_lock(w->io);
	n = run_locked(w, w, 0, false);
	io_unlock(w->io);
	return n;
}

/* Pulls.  A peer that owes completions and has not reaped them for
 * WEFT_IO_STALE_NS is either in a long task or runnable and waiting for a
 * CPU, most often behind another thread on its own CPU while self's CPU
 * idles for microseconds at a time: too briefly for the kernel to pull it
 * over.  Only its own thread can collect its completions (io_uring).
 * Which of the two it is, its CPU-time clock says: two looks at it, with
 * no reap by the peer in between and at most WEFT_IO_PULL_WINDOW_NS apart,
 * that find it ran less than half the time mean it waits.  Then self
 * narrows peer's mask to self's CPU, which moves it here, and yields to
 * it; peer puts its own mask back the next time it looks at its event
 * state, looks for work, or parks on its futex (weft__io_unpull).  A peer
 * in a long task is left where it runs.  Both the pull (narrow, then set
 * pulled) and the restore (put the mask back, clear pulled) happen under
 * peer's io->lock, so neither slips into the other.  One hole is left: a
 * pull decided while peer had work pending may land after peer's last
 * look, peer having reaped meanwhile and gone to sleep on its futex (it
 * parks there only with nothing pending).  So after a pull self reads
 * npending again, and undoes the pull if it is 0; peer, before its futex
 * sleep, looks at pulled: both after a full barrier (Dekker), so either
 * self sees peer's work gone or peer sees the pull.  Not with pinned
 * workers.  Under peer's io->lock with io->live: its thread is alive. */
static bool waits_for_cpu(struct weft__io *io, int64_t now)
{
	int64_t prev_cpu = atom_load_64(&io->seen_cpu_ns), prev_at = atom_load_64(&io->seen_at_ns), cpu;
	struct timespec ts;

	if (clock_gettime(io->cpu_clock, &ts) != 0)
		return false;
	cpu = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	atom_store_64(&io->seen_cpu_ns, cpu);
	atom_store_64(&io->seen_at_ns, now);
	return prev_at > atom_load_64(&io->last_reap_ns) && now - prev_at <= WEFT_IO_PULL_WINDOW_NS &&
	       2 * (cpu - prev_cpu) < now - prev_at;
}

static void pull(struct weft__worker *self, struct weft__worker *peer, int64_t now)
{
	cpu_set_t one;
	int cpu;

	if (self->rt->cfg.pin || !peer->io->cpus || atom_load_32(&peer->io->pulled) ||
	    !waits_for_cpu(peer->io, now))
		return;
	cpu = sched_getcpu();
	if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, (cpu_set_t *)peer->io->cpus))
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (pthread_setaffinity_np(peer->thread, sizeof one, &one) != 0)
		return;
	atom_store_32(&peer->io->pulled, 1);
	WEFT_STAT_INC(self, io_pulls);
	atom_fence_sc();
	if (!atom_load_64(&peer->io->npending)) {
		(void)pthread_setaffinity_np(peer->thread, sizeof(cpu_set_t), peer->io->cpus);
		atom_store_32(&peer->io->pulled, 0);
	}
}

void weft__io_unpull_slow(struct weft__worker *w)
{
	struct weft__io *io = w->io;

	/* An unshared state: the owner does not hold io->lock otherwise. */
	pthread_mutex_lock(&io->lock);
	if (io->pulled) {
		(void)pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), io->cpus);
		atom_store_32(&io->pulled, 0);
	}
	pthread_mutex_unlock(&io->lock);
}

int weft__io_help_peer(struct weft__worker *self, struct weft__worker *peer)
{
	struct weft__io *io = peer->io;
	int64_t now;
	int n = 0;

	if (!io || !atom_load_64(&io->npending))
		return 0;
	now = (int64_t)weft__now_ns();
	if (now - atom_load_64(&io->last_reap_ns) < WEFT_IO_STALE_NS)
		return 0;
	if (!atom_load_32(&io->shared)) {
		/* Only the peer's thread can collect what came for it: if it
		 * has work owed, the kernel has made it runnable (or it is
		 * busy elsewhere), so it is likely waiting for a core.  The
		 * lock keeps its backend from going (fini) while we look.
		 * At most one yield per WEFT_IO_STALE_NS: where the peer has
		 * a core of its own (in one long task), each is a system call
		 * for nothing. */
		bool owed;
		if (now - self->io->last_yield_ns < WEFT_IO_STALE_NS || !io->backend->owed ||
		    pthread_mutex_trylock(&io->lock) != 0)
			return 0;
		owed = io->live && io->backend->owed(peer);
		if (owed)
			pull(self, peer, now);
		pthread_mutex_unlock(&io->lock);
		if (owed) {
			self->io->last_yield_ns = now;
			WEFT_STAT_INC(self, io_yields);
			sched_yield();
		}
		return 0;
	}
	if (pthread_mutex_trylock(&io->lock) != 0)
		return 0; /* its owner (or another helper) is at it */
	if (io->shared) {
		n = run_locked(peer, self, 0, true);
		WEFT_STAT_INC(self, io_helps);
	}
	pthread_mutex_unlock(&io->lock);
	return n;
}

struct weft__worker *weft__io_watch_peer(struct weft__worker *self)
{
	struct weft_runtime *rt = self->rt;
	unsigned n = rt->nworkers, i;

	/* Every worker's event state is published once io_init_left is 0. */
	if (n < 2 || atom_load_32(&rt->io_init_left))
		return NULL;
	for (i = 1; i < n && i <= WEFT_IO_WATCH_PEERS; i++) {
		struct weft__worker *peer = &rt->workers[(self->index + i) % n];
		struct weft__io *io = peer->io;
		if (io && atom_load_32(&io->shared) && atom_load_64(&io->npending) &&
		    !atom_load_32(&peer->park_word))
			return peer;
	}
	return NULL;
}

void weft__io_wake(struct weft__worker *w)
{
	uint64_t one = 1;

	/* A failure can only be EAGAIN, a saturated counter: the eventfd is
	 * readable then, which is all a wake-up needs. */
	ssize_t n = write(w->io->wake_fd, &one, sizeof one);
	(void)n;
}
