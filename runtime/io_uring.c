/*
 * io_uring.c: the io_uring backend of the event-completion layer (io.h).
 *
 * Each worker owns one ring, created, fed and reaped only on its own thread.
 * An operation becomes one SQE whose user_data is the weft_op_t pointer; its
 * CQE is turned into weft__io_complete.  io.c does everything else (timers,
 * fd lists, mail); this file only starts, waits and reports.
 *
 * user_data.  Ops are pointer-aligned, so the low two bits name what a CQE
 * belongs to:
 *   op|0  the op's own request (READ, RECV, ...)
 *   op|1  a readiness POLL_ADD that must fire before the op is re-issued
 *   op|2  an ASYNC_CANCEL aimed at the op's current request
 *   3     the wake poll on io->wake_fd (no op)
 *   ~0    liburing's private timeout (LIBURING_UDATA_TIMEOUT, kernels without
 *         IORING_FEAT_EXT_ARG), ignored.
 *
 * Per-op state lives in op->backend_state: a phase (queued for an SQE, the
 * op in the kernel, the readiness poll in the kernel, done), a "cancel
 * requested" bit, a connect-in-progress bit, the number of cancel requests
 * still outstanding and the number of cancel retries.  op->events holds a
 * final result while cancel CQEs are still to come.
 *
 * Invariants
 *   U1  at most one request of an op (op|0 or op|1) is in the kernel or in
 *       the todo list at a time; only its CQE moves the op on.
 *   U2  an op is reported (weft__io_complete, exactly once: io.h's I1) only
 *       when its last request has completed and no cancel request aimed at
 *       it is outstanding; so no CQE naming op arrives after the report, and
 *       the backend never touches it again (I3).
 *   U3  once cancel was requested an op is never re-issued: an EAGAIN, EINTR
 *       or readiness CQE reports -ECANCELED instead.
 *
 * Choices
 *   - Setup flags, tried in order, each falling back on -EINVAL (older
 *     kernels reject unknown flags): SINGLE_ISSUER|DEFER_TASKRUN with
 *     TASKRUN_FLAG (6.1), without it, SINGLE_ISSUER|COOP_TASKRUN|
 *     TASKRUN_FLAG (6.0), COOP_TASKRUN|TASKRUN_FLAG (5.19), then none.
 *     Completion work then runs only when the worker enters the ring, never
 *     by interrupting it; TASKRUN_FLAG raises IORING_SQ_TASKRUN when such
 *     work waits, which is what busy() reads.  Never SQPOLL: it burns a core
 *     per ring (design-notes 8).  The CQ is 4x the SQ; overflow beyond it is
 *     kept by the kernel (FEAT_NODROP, required) and flushed by reaping.
 *   - Required: FEAT_NODROP, FEAT_RW_CUR_POS (off -1), FEAT_FAST_POLL (5.7,
 *     which also brings every opcode used here).  Without them init fails
 *     and io.c uses epoll.
 *   - SEND is first tried at once with send(MSG_DONTWAIT), as the epoll
 *     backend does: it nearly always fits the socket buffer, and completing
 *     inline spares a request, a completion and a suspension of the
 *     caller (half the resumptions of a request-response exchange).  Only
 *     a send that would block goes through the ring.  The try is io.c's
 *     (weft__io_send_try), made before the op is PENDING, so a send that
 *     fits also skips the fd list, the state's atomic exchanges and
 *     completion (echo, 1000 connections, 1 worker: 1414 -> 1307 user
 *     instructions per message under callgrind); weft_send makes it before
 *     any op exists (1332 -> 1208).
 *   - ACCEPT (the one-at-a-time kind) is submitted and reaped as soon as
 *     it is issued, not at the worker's next poll: a connection already
 *     waiting is then accepted inline and the caller goes on without
 *     suspending, so an accept loop drains a backlog at once, as epoll's
 *     first try does.  Queued, each accept waited for a round of the
 *     worker's other work: with 1000 echo connections arriving together,
 *     the last one's first echo came 0.5-2.5 s late.
 *   - RECV after a short read: a short read says the peer had sent no
 *     more (a request-response exchange: the next request comes only
 *     after the reply), so the fd's next RECV on this worker carries
 *     IORING_RECVSEND_POLL_FIRST (5.19): the kernel arms its poll without
 *     first trying a receive that would fail.  Readiness is still checked
 *     when the poll is armed, so data that came meanwhile completes it at
 *     once.  A full read clears the mark (data may be waiting).  For
 *     weft-httpd's GET / this took submission from 8.6% to 5.9% of the
 *     server's CPU (perf, 1 worker, wrk -c64).
 *   - Wake: a one-shot POLL_ADD(POLLIN) on wake_fd, armed lazily before
 *     each wait that may block and re-armed after it fires.  POLL_ADD checks
 *     readiness when armed, so an eventfd left readable makes the next wait
 *     return at once (level-triggered, as io.c expects); it never reads the
 *     eventfd: its CQE sets io->wake_seen and io.c drains it.
 *   - EAGAIN: current kernels wait for readiness inside io_uring even on
 *     O_NONBLOCK fds, but older ones (and MSG_DONTWAIT) give -EAGAIN.  The
 *     op is then re-issued behind a readiness POLL_ADD of its own (op|1),
 *     not a linked one, so that every step passes through this file and a
 *     cancel cannot slip between the poll and the op (U3).  The fd is
 *     marked (fdslot.backend) so later input ops on it poll first.  A
 *     CONNECT that gives -EINPROGRESS (or -EINTR) waits for POLLOUT and
 *     then reports SO_ERROR.  Other -EINTR: re-issued at once.
 *   - Cancel: ASYNC_CANCEL by user_data of the op's current request,
 *     submitted at once (with the op's own SQE if that was still queued):
 *     weft_close closes the fd right after cancelling, and a request not
 *     yet submitted would then fail with -EBADF instead of -ECANCELED.  If
 *     the cancel finds nothing (-ENOENT) while the op is still in the
 *     kernel (between two states, in task work) it is retried, at most
 *     CANCEL_RETRIES times.
 *   - ACCEPT_MULTI is one multishot ACCEPT: every CQE that carries a new
 *     fd goes to weft__io_deliver, and while IORING_CQE_F_MORE says the
 *     request lives on the op stays in PH_OP (U1 holds: still one request).
 *     A request the kernel ended after a success is issued again (unless
 *     cancelled, U3); one that ended with an error finishes the op.  A
 *     kernel without multishot accept (before 5.19) answers -EINVAL: the op
 *     then re-issues a plain ACCEPT after each connection (ST_SINGLE).
 *   - No SQE free even after submitting (CQ backlog on old kernels): the
 *     request waits on a todo list that poll() drains first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io.h"
#include "worker.h"

/* CQ entries per SQ entry.  Ops in flight are not bounded by the SQ, so a
 * larger CQ makes the kernel's (slower) overflow list rarer; 4x costs 16
 * KiB for 256 entries. */
#define CQ_FACTOR 4
/* CQEs copied out per batch while reaping. */
#define REAP_BATCH 64
/* Cancel requests that found nothing retried this many times: the op is
 * then between states for at most one more kernel entry; more would only
 * spin on a kernel that cannot cancel it. */
#define CANCEL_RETRIES 4
/* Largest read/write length the kernel accepts in one call (MAX_RW_COUNT);
 * longer requests are clamped, giving a short count (a result). */
#define RW_MAX 0x7ffff000u

/* user_data tags (see the top). */
#define UD_OP 0u
#define UD_READY 1u
#define UD_CANCEL 2u
#define UD_TAGMASK 3u
#define UD_WAKE ((uint64_t)3)

_Static_assert(_Alignof(weft_op_t) >= 4, "op pointers need two free low bits");

/* op->backend_state */
enum phase {
	PH_IDLE = 0,  /* not with this backend */
	PH_Q_OP,      /* on the todo list, to issue the op */
	PH_Q_READY,   /* on the todo list, to issue its readiness poll */
	PH_OP,        /* the op's request is in the SQ or the kernel */
	PH_READY,     /* its readiness poll is in the SQ or the kernel */
	PH_DONE       /* final result in op->events; cancel CQEs outstanding */
};
#define ST_PHASE 0x7u
#define ST_CANCEL 0x8u  /* cancel requested (U3) */
#define ST_INPROG 0x10u /* CONNECT gave -EINPROGRESS: report SO_ERROR */
#define ST_SINGLE 0x20u /* ACCEPT_MULTI on a kernel without multishot accept */
#define ST_DATA_FIRST 0x40u /* RECV: IORING_RECVSEND_POLL_FIRST */
#define ST_NCANCEL_SHIFT 8
#define ST_NCANCEL_ONE (1u << ST_NCANCEL_SHIFT)
#define ST_NCANCEL_MASK (0xffu << ST_NCANCEL_SHIFT)
#define ST_RETRY_SHIFT 16
#define ST_RETRY_ONE (1u << ST_RETRY_SHIFT)
#define ST_RETRY_MASK (0xffu << ST_RETRY_SHIFT)

/* fdslot.backend: input ops on this fd gave EAGAIN; poll first. */
#define FD_POLL_FIRST 1u
/* fdslot.backend: the last RECV on this fd here was a short read. */
#define FD_DRAINED 2u

enum todo_kind { TD_ISSUE, TD_CANCEL };

struct todo {
	weft_op_t *op;
	enum todo_kind kind;
};

struct uring {
	struct io_uring ring;
	struct todo *todo; /* requests waiting for an SQE, oldest first */
	uint32_t ntodo, captodo;
	uint64_t nops;     /* ops issued and not yet reported */
	int reported;      /* ops reported in the current poll() */
	int wake_fd;
	bool wake_armed;   /* the wake poll is in the SQ or the kernel */
	bool wake_dead;    /* wake_fd refused polling: stop arming it */
	bool defer;        /* IORING_SETUP_DEFER_TASKRUN */
	bool taskrun_flag; /* the kernel raises IORING_SQ_TASKRUN */
	bool poll_first;   /* the kernel knows IORING_RECVSEND_POLL_FIRST */
};

static inline struct uring *be_of(struct weft__worker *w)
{
	return w->io->be;
}

static inline uint32_t phase(const weft_op_t *op)
{
	return weft__op_priv((weft_op_t *)op)->backend_state & ST_PHASE;
}

static inline void set_phase(weft_op_t *op, uint32_t ph)
{
	struct weft__op *p = weft__op_priv(op);

	p->backend_state = (p->backend_state & ~ST_PHASE) | ph;
}

static inline uint64_t ud(weft_op_t *op, unsigned tag)
{
	return (uint64_t)(uintptr_t)op | tag;
}

static inline unsigned rw_len(size_t len)
{
	return len > RW_MAX ? RW_MAX : (unsigned)len;
}

/* An SQE, submitting what is queued when the SQ is full; NULL if there is
 * still none (the kernel refused the submission).  Owner worker only. */
static struct io_uring_sqe *get_sqe(struct uring *be)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&be->ring);

	if (!sqe) {
		io_uring_submit(&be->ring);
		sqe = io_uring_get_sqe(&be->ring);
	}
	return sqe;
}

/* Queue the op's own request.  False when no SQE.  Owner worker only. */
static bool prep_op(struct uring *be, weft_op_t *op)
{
	struct io_uring_sqe *sqe = get_sqe(be);

	if (!sqe)
		return false;
	switch (op->opcode) {
	case WEFT_OP_READ:
		io_uring_prep_read(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off);
		break;
	case WEFT_OP_WRITE:
		io_uring_prep_write(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off);
		break;
	case WEFT_OP_RECV:
		io_uring_prep_recv(sqe, op->fd, op->buf, rw_len(op->len), op->flags);
		if (weft__op_priv(op)->backend_state & ST_DATA_FIRST)
			sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
		break;
	case WEFT_OP_SEND:
		io_uring_prep_send(sqe, op->fd, op->buf, rw_len(op->len), op->flags | MSG_NOSIGNAL);
		break;
	case WEFT_OP_ACCEPT:
		io_uring_prep_accept(sqe, op->fd, op->addr, op->addr ? &op->addrlen : NULL, op->flags);
		break;
	case WEFT_OP_ACCEPT_MULTI:
		if (weft__op_priv(op)->backend_state & ST_SINGLE)
			io_uring_prep_accept(sqe, op->fd, NULL, NULL, op->flags);
		else
			io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, op->flags);
		break;
	case WEFT_OP_CONNECT:
		io_uring_prep_connect(sqe, op->fd, op->addr, op->addrlen);
		break;
	case WEFT_OP_CLOSE:
		io_uring_prep_close(sqe, op->fd);
		break;
	default: /* WEFT_OP_POLL; issue() refused the others */
		io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
		break;
	}
	io_uring_sqe_set_data64(sqe, ud(op, UD_OP));
	set_phase(op, PH_OP);
	return true;
}

/* The events the op waits for when the kernel said EAGAIN. */
static unsigned ready_events(const weft_op_t *op)
{
	switch (op->opcode) {
	case WEFT_OP_READ:
	case WEFT_OP_RECV:
	case WEFT_OP_ACCEPT:
	case WEFT_OP_ACCEPT_MULTI:
		return POLLIN;
	default:
		return POLLOUT;
	}
}

/* Queue the op's readiness poll.  False when no SQE.  Owner worker only. */
static bool prep_ready(struct uring *be, weft_op_t *op)
{
	struct io_uring_sqe *sqe = get_sqe(be);

	if (!sqe)
		return false;
	io_uring_prep_poll_add(sqe, op->fd, ready_events(op));
	io_uring_sqe_set_data64(sqe, ud(op, UD_READY));
	set_phase(op, PH_READY);
	return true;
}

/* Queue a cancel of the op's current request (phase PH_OP or PH_READY).
 * False when no SQE.  Owner worker only. */
static bool prep_cancel(struct uring *be, weft_op_t *op)
{
	struct io_uring_sqe *sqe = get_sqe(be);

	if (!sqe)
		return false;
	io_uring_prep_cancel64(sqe, ud(op, phase(op) == PH_READY ? UD_READY : UD_OP), 0);
	io_uring_sqe_set_data64(sqe, ud(op, UD_CANCEL));
	return true;
}

/* Append to the todo list.  0 or -ENOMEM.  Owner worker only. */
static int todo_push(struct uring *be, weft_op_t *op, enum todo_kind kind)
{
	if (be->ntodo == be->captodo) {
		uint32_t cap = be->captodo ? 2 * be->captodo : 64;
		struct todo *t = realloc(be->todo, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		be->todo = t;
		be->captodo = cap;
	}
	be->todo[be->ntodo++] = (struct todo){ op, kind };
	return 0;
}

/* Put the op's next request (its own, or its readiness poll) in the SQ, or
 * on the todo list behind the others.  0 or -ENOMEM.  Owner worker only. */
static int start(struct uring *be, weft_op_t *op, bool ready_first)
{
	if (!be->ntodo && (ready_first ? prep_ready(be, op) : prep_op(be, op)))
		return 0;
	set_phase(op, ready_first ? PH_Q_READY : PH_Q_OP);
	return todo_push(be, op, TD_ISSUE);
}

/* The op is finished with res: report it now, or keep res until the cancel
 * requests aimed at it have completed (U2).  Owner worker only. */
static void finish(struct weft__worker *w, struct uring *be, weft_op_t *op, ssize_t res)
{
	struct weft__op *p = weft__op_priv(op);

	if (p->backend_state & ST_NCANCEL_MASK) {
		p->events = (uint32_t)(int32_t)res;
		set_phase(op, PH_DONE);
		return;
	}
	p->backend_state = PH_IDLE;
	be->nops--;
	be->reported++;
	weft__io_complete(w, op, res); /* I3: op is not touched after this */
}

/* Ask the kernel to cancel the op's current request, now or from the todo
 * list.  Owner worker only. */
static void request_cancel(struct uring *be, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);

	if (!be->ntodo && prep_cancel(be, op)) {
		p->backend_state += ST_NCANCEL_ONE;
		return;
	}
	/* Without memory the cancel is lost; the op still completes on its
	 * own, as it would had it won the race. */
	if (todo_push(be, op, TD_CANCEL) == 0)
		p->backend_state += ST_NCANCEL_ONE;
}

/* Turn todo entries into SQEs, oldest first, until the SQ refuses.  Ops
 * whose cancel came while they waited are reported here.  Owner worker
 * only. */
static void drain_todo(struct weft__worker *w, struct uring *be)
{
	uint32_t i;

	for (i = 0; i < be->ntodo; i++) {
		weft_op_t *op = be->todo[i].op;
		struct weft__op *p = weft__op_priv(op);
		uint32_t ph = phase(op);

		if (be->todo[i].kind == TD_ISSUE) {
			/* No cancel request is counted on a queued op
			 * (uring_cancel), so finish reports at once. */
			if (p->backend_state & ST_CANCEL)
				finish(w, be, op, -ECANCELED);
			else if (!(ph == PH_Q_READY ? prep_ready(be, op) : prep_op(be, op)))
				break;
		} else if (ph == PH_OP || ph == PH_READY) {
			if (!prep_cancel(be, op))
				break;
		} else {
			/* The op ended while its cancel waited here. */
			p->backend_state -= ST_NCANCEL_ONE;
			if (ph == PH_DONE && !(p->backend_state & ST_NCANCEL_MASK))
				finish(w, be, op, (int32_t)p->events);
		}
	}
	if (i) {
		memmove(be->todo, be->todo + i, (be->ntodo - i) * sizeof(*be->todo));
		be->ntodo -= i;
	}
}

/* Mark fd so that its next input ops wait for readiness first. */
static void mark_poll_first(struct weft__worker *w, int fd)
{
	struct weft__fdslot *s = weft__io_fdslot(w, fd);

	if (s)
		s->backend |= FD_POLL_FIRST;
}

/* Record whether a RECV drained its socket: a short read says the peer
 * had sent no more, so the fd's next RECV here waits for data before it
 * tries (ST_DATA_FIRST).  A full read, the end of the stream or an error
 * clears the mark; a MSG_PEEK takes nothing away and leaves it.  Owner
 * worker only. */
static void note_recv(struct weft__worker *w, const weft_op_t *op, int32_t res)
{
	struct weft__fdslot *s;

	if (op->flags & MSG_PEEK)
		return;
	s = weft__io_fdslot(w, op->fd);
	if (!s)
		return;
	if (res > 0 && (size_t)res < op->len)
		s->backend |= FD_DRAINED;
	else
		s->backend &= ~FD_DRAINED;
}

/* A CQE of an ACCEPT_MULTI op: hand a connection over, and re-issue the
 * accept when the kernel's multishot request ended (or was a single one).
 * Returns false when the CQE ends nothing and op_cqe goes on with it.
 * Owner worker only. */
static bool multi_cqe(struct weft__worker *w, struct uring *be, weft_op_t *op, int32_t res, uint32_t flags)
{
	struct weft__op *p = weft__op_priv(op);
	int rc;

	if (res >= 0)
		weft__io_deliver(w, op, res);
	else if (res == -EINVAL && !(p->backend_state & ST_SINGLE))
		p->backend_state |= ST_SINGLE; /* no multishot here: one at a time */
	else if (flags & IORING_CQE_F_MORE)
		return true; /* a failure the request survived */
	else
		return false;
	if (flags & IORING_CQE_F_MORE)
		return true;
	if (p->backend_state & ST_CANCEL) /* U3 */
		finish(w, be, op, -ECANCELED);
	else if ((rc = start(be, op, false)))
		finish(w, be, op, rc);
	return true;
}

/* The op's own CQE.  Owner worker only. */
static void op_cqe(struct weft__worker *w, struct uring *be, weft_op_t *op, int32_t res, uint32_t flags)
{
	struct weft__op *p = weft__op_priv(op);
	/* A connect interrupted or started in the background goes on in the
	 * kernel: calling it again would say EALREADY, so wait and ask. */
	bool inprog = (res == -EINPROGRESS || res == -EINTR) && op->opcode == WEFT_OP_CONNECT;
	int rc;

	if (op->opcode == WEFT_OP_ACCEPT_MULTI && res != -EAGAIN && res != -EINTR &&
	    multi_cqe(w, be, op, res, flags))
		return;
	if (res != -EAGAIN && res != -EINTR && !inprog) {
		if (op->opcode == WEFT_OP_RECV && be->poll_first)
			note_recv(w, op, res);
		finish(w, be, op, res);
		return;
	}
	if (p->backend_state & ST_CANCEL) { /* U3 */
		finish(w, be, op, -ECANCELED);
		return;
	}
	if (inprog)
		p->backend_state |= ST_INPROG;
	if (res == -EAGAIN && ready_events(op) == POLLIN)
		mark_poll_first(w, op->fd);
	/* EINTR, and EAGAIN from CLOSE or POLL (never seen), go again at once;
	 * EAGAIN and a connect in progress wait for readiness. */
	rc = start(be, op, inprog || (res == -EAGAIN && op->opcode != WEFT_OP_CLOSE && op->opcode != WEFT_OP_POLL));
	if (rc)
		finish(w, be, op, rc);
}

/* The CQE of the op's readiness poll.  Owner worker only. */
static void ready_cqe(struct weft__worker *w, struct uring *be, weft_op_t *op, int32_t res)
{
	struct weft__op *p = weft__op_priv(op);
	int rc;

	if (p->backend_state & ST_CANCEL) {
		finish(w, be, op, -ECANCELED);
	} else if (res == -EINTR) {
		if ((rc = start(be, op, true)))
			finish(w, be, op, rc);
	} else if (res < 0) {
		finish(w, be, op, res);
	} else if (p->backend_state & ST_INPROG) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		finish(w, be, op, -err);
	} else if ((rc = start(be, op, false))) {
		finish(w, be, op, rc);
	}
}

/* The CQE of a cancel request aimed at op.  Owner worker only. */
static void cancel_cqe(struct weft__worker *w, struct uring *be, weft_op_t *op, int32_t res)
{
	struct weft__op *p = weft__op_priv(op);
	uint32_t ph = phase(op);

	p->backend_state -= ST_NCANCEL_ONE;
	if (ph == PH_DONE) {
		if (!(p->backend_state & ST_NCANCEL_MASK))
			finish(w, be, op, (int32_t)p->events);
	} else if (res == -ENOENT && (ph == PH_OP || ph == PH_READY) &&
	           (p->backend_state & ST_RETRY_MASK) < CANCEL_RETRIES * ST_RETRY_ONE) {
		/* Not found, yet its CQE has not come: the request is between
		 * two states (in task work).  Aim again. */
		p->backend_state += ST_RETRY_ONE;
		request_cancel(be, op);
	}
	/* 0 or -EALREADY: the op's own CQE follows. */
}

/* Reap every available CQE (flushing the kernel's overflow list on the
 * way: io_uring_peek_batch_cqe enters the ring when IORING_SQ_CQ_OVERFLOW
 * or IORING_SQ_TASKRUN says so).  A batch is copied out and released before
 * it is handled; cancel CQEs of a batch are handled after the others, so
 * that an op whose CQE came with them is reported without another round.
 * Owner worker only. */
static void reap(struct weft__worker *w, struct uring *be)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct {
		uint64_t ud;
		int32_t res;
		uint32_t flags;
	} c[REAP_BATCH];
	unsigned n, i;

	while ((n = io_uring_peek_batch_cqe(&be->ring, cqes, REAP_BATCH)) > 0) {
		for (i = 0; i < n; i++) {
			c[i].ud = cqes[i]->user_data;
			c[i].res = cqes[i]->res;
			c[i].flags = cqes[i]->flags;
		}
		io_uring_cq_advance(&be->ring, n);
		for (i = 0; i < n; i++) {
			weft_op_t *op = (weft_op_t *)(uintptr_t)(c[i].ud & ~(uint64_t)UD_TAGMASK);
			unsigned tag = (unsigned)(c[i].ud & UD_TAGMASK);

			if (c[i].ud == LIBURING_UDATA_TIMEOUT)
				continue;
			if (c[i].ud == UD_WAKE) {
				be->wake_armed = false;
				w->io->wake_seen = true;
				if (c[i].res == -EBADF || c[i].res == -EINVAL)
					be->wake_dead = true;
			} else if (tag == UD_OP) {
				op_cqe(w, be, op, c[i].res, c[i].flags);
			} else if (tag == UD_READY) {
				ready_cqe(w, be, op, c[i].res);
			}
		}
		for (i = 0; i < n; i++)
			if (c[i].ud != LIBURING_UDATA_TIMEOUT && (c[i].ud & UD_TAGMASK) == UD_CANCEL)
				cancel_cqe(w, be, (weft_op_t *)(uintptr_t)(c[i].ud & ~(uint64_t)UD_TAGMASK),
				           c[i].res);
	}
}

/* Whether completions may be waiting in the kernel for this thread to
 * collect them by entering the ring.  No system call.  Owner worker only. */
static bool kernel_has_work(struct uring *be)
{
	unsigned flags = IO_URING_READ_ONCE(*be->ring.sq.kflags);

	if (flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))
		return true;
	/* DEFER_TASKRUN without the flag: anything in flight may be done. */
	return be->defer && !be->taskrun_flag && be->nops;
}

/* Whether the kernel holds completions for w's thread: deferred task work
 * (IORING_SQ_TASKRUN), or CQEs it has not reaped.  Any thread: the ring's
 * pointers are fixed once it is set up, and the words are read once each,
 * relaxed (a stale answer only delays or wastes one yield). */
static bool uring_owed(struct weft__worker *w)
{
	struct uring *be = w->io->be;
	struct io_uring_cq *cq = &be->ring.cq;

	if (IO_URING_READ_ONCE(*be->ring.sq.kflags) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))
		return true;
	return IO_URING_READ_ONCE(*cq->ktail) != IO_URING_READ_ONCE(*cq->khead);
}

/* Set up the ring.  Worker thread, before any other call. */
static int uring_init(struct weft__worker *w, const weft_config_t *cfg)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	const unsigned need = IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS | IORING_FEAT_FAST_POLL;
	unsigned entries = cfg && cfg->io_entries ? cfg->io_entries : WEFT_IO_ENTRIES_DEFAULT;
	struct io_uring_params p;
	struct uring *be;
	size_t i;
	int rc = -EINVAL;

	if (entries > 32768) /* IORING_MAX_ENTRIES; CLAMP does the rest */
		entries = 32768;
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
		p.cq_entries = entries * CQ_FACTOR;
		rc = io_uring_queue_init_params(entries, &be->ring, &p);
		if (rc != -EINVAL)
			break;
	}
	if (rc < 0) {
		free(be);
		return rc;
	}
	if ((p.features & need) != need) {
		io_uring_queue_exit(&be->ring);
		free(be);
		return -EOPNOTSUPP;
	}
	be->defer = p.flags & IORING_SETUP_DEFER_TASKRUN;
	be->taskrun_flag = p.flags & IORING_SETUP_TASKRUN_FLAG;
	/* 5.19, as COOP_TASKRUN; DEFER_TASKRUN is 6.1. */
	be->poll_first = p.flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN);
	be->wake_fd = w->io->wake_fd;
	w->io->be = be;
	return 0;
}

/* Tear the ring down (io.c saw no pending op).  Worker thread. */
static void uring_fini(struct weft__worker *w)
{
	struct uring *be = be_of(w);

	if (!be)
		return;
	io_uring_queue_exit(&be->ring);
	free(be->todo);
	free(be);
	w->io->be = NULL;
}

/* Start op (PENDING).  Queued only: poll() submits.  Owner worker only. */
static int uring_issue(struct weft__worker *w, weft_op_t *op)
{
	struct uring *be = be_of(w);
	struct weft__op *p = weft__op_priv(op);
	struct weft__fdslot *s;
	bool ready_first = false, data_first = false;
	int rc;

	switch (op->opcode) {
	case WEFT_OP_READ:
	case WEFT_OP_RECV:
	case WEFT_OP_ACCEPT:
	case WEFT_OP_ACCEPT_MULTI:
		s = weft__io_fdslot(w, op->fd);
		ready_first = s && (s->backend & FD_POLL_FIRST);
		data_first = s && (s->backend & FD_DRAINED) && op->opcode == WEFT_OP_RECV;
		break;
	case WEFT_OP_CLOSE:
		s = weft__io_fdslot(w, op->fd);
		if (s) /* the number may be reused */
			s->backend &= ~(FD_POLL_FIRST | FD_DRAINED);
		break;
	case WEFT_OP_SEND: {
		ssize_t n;
		if (p->flags & WEFT__OPF_TRIED)
			break; /* the first try found no room just now */
		n = weft__io_send_try(op->fd, op->buf, op->len, op->flags);
		if (n != -EAGAIN) {
			weft__io_complete(w, op, n);
			return 0;
		}
		break;
	}
	case WEFT_OP_WRITE:
	case WEFT_OP_CONNECT:
	case WEFT_OP_POLL:
		break;
	default:
		return -EINVAL;
	}
	p->backend_state = data_first ? PH_IDLE | ST_DATA_FIRST : PH_IDLE;
	p->events = 0;
	rc = start(be, op, ready_first);
	if (rc)
		return rc;
	be->nops++;
	if (op->opcode == WEFT_OP_ACCEPT && !ready_first) {
		/* See Choices.  Reaped here, op's own completion lets the
		 * caller go on inline (io.c: op is the one issuing).  An error
		 * leaves the SQE for the next poll. */
		(void)io_uring_submit_and_get_events(&be->ring);
		reap(w, be);
	}
	return 0;
}

/* Cancel a pending op (at most once per op).  Owner worker only. */
static void uring_cancel(struct weft__worker *w, weft_op_t *op)
{
	struct uring *be = be_of(w);
	struct weft__op *p = weft__op_priv(op);
	uint32_t ph = phase(op);

	p->backend_state |= ST_CANCEL;
	/* A queued op is reported by drain_todo; one in the kernel is aimed
	 * at.  Other phases: not ours, or already cancelled. */
	if (ph != PH_OP && ph != PH_READY)
		return;
	request_cancel(be, op);
	/* Submit now: the op's own SQE may still sit in the SQ, and
	 * weft_close closes the fd as soon as this returns; submitted, the
	 * request holds the file and ends with -ECANCELED, not -EBADF. */
	io_uring_submit(&be->ring);
}

/* Submit, wait at most timeout_ns for one completion (or a wake), reap all;
 * without submit (timeout 0), enter the ring only when the kernel holds
 * completions.  Owner worker only. */
static int uring_poll(struct weft__worker *w, int64_t timeout_ns, bool submit)
{
	struct uring *be = be_of(w);
	struct io_uring_cqe *cqe;
	int rc = 0;

	be->reported = 0;
	if (be->ntodo)
		drain_todo(w, be);
	if (timeout_ns != 0 && !be->wake_armed && !be->wake_dead) {
		struct io_uring_sqe *sqe = be->ntodo ? NULL : get_sqe(be);
		if (sqe) {
			io_uring_prep_poll_add(sqe, be->wake_fd, POLLIN);
			io_uring_sqe_set_data64(sqe, UD_WAKE);
			be->wake_armed = true;
		}
	}
	/* No wake poll (no SQE for it, or wake_fd refused): a wake could be
	 * missed, so wait only briefly and let the caller come back. */
	if (!be->wake_armed && (timeout_ns < 0 || timeout_ns > 1000000))
		timeout_ns = 1000000;
	if (be->reported || io_uring_cq_ready(&be->ring))
		timeout_ns = 0;
	if (timeout_ns == 0) {
		if ((submit && io_uring_sq_ready(&be->ring)) || kernel_has_work(be))
			rc = io_uring_submit_and_get_events(&be->ring);
	} else if (timeout_ns < 0) {
		rc = io_uring_submit_and_wait(&be->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ns / 1000000000,
			.tv_nsec = timeout_ns % 1000000000,
		};
		/* Without IORING_FEAT_EXT_ARG liburing queues a TIMEOUT SQE
		 * (LIBURING_UDATA_TIMEOUT), which reap() skips. */
		rc = io_uring_submit_and_wait_timeout(&be->ring, &cqe, 1, &ts, NULL);
	}
	/* ETIME: timed out; EINTR: a signal; EBUSY: CQ backlog (reaping
	 * flushes it); EAGAIN: no request memory now.  None is a failure. */
	if (rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN)
		rc = 0;
	reap(w, be);
	if (be->reported || rc > 0)
		return be->reported;
	return rc;
}

/* Nonzero when poll(0, submit) would find work: CQEs to reap, completions
 * the kernel keeps until this thread enters the ring, and with submit
 * unsubmitted SQEs and queued requests.  No system call.  Owner worker
 * only. */
static int uring_busy(struct weft__worker *w, bool submit)
{
	struct uring *be = be_of(w);

	if (!be)
		return 0;
	return (submit && (be->ntodo || io_uring_sq_ready(&be->ring))) || io_uring_cq_ready(&be->ring) ||
	       kernel_has_work(be);
}

const struct weft__io_backend weft__io_uring_backend = {
	.name = "io_uring",
	.id = WEFT_IO_URING,
	.init = uring_init,
	.fini = uring_fini,
	.issue = uring_issue,
	.cancel = uring_cancel,
	.poll = uring_poll,
	.busy = uring_busy,
	.owed = uring_owed,
};
