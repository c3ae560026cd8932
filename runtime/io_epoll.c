/*
 * io_epoll.c: the epoll backend of the event-completion layer (io.h).
 *
 * The fallback when io_uring cannot be set up, and WEFT_IO=epoll.  Each
 * worker owns one epoll set, created on its own thread and changed and
 * reaped only under its lock: by the owner, or by a peer that found it
 * unreaped for too long (io.h, "Shared event state"; "owner worker" below
 * means either, holding the lock).  An operation is first tried at once without blocking; if the
 * kernel says "not yet" (EAGAIN, EINPROGRESS) the op waits for readiness of
 * its fd in the owner's epoll set and is tried again when the fd fires.  io.c
 * does everything else (timers, fd lists, mail); this file only starts,
 * waits and reports.
 *
 * Vocabulary.
 *   interest   the epoll events an op waits for (op->events): EPOLLIN |
 *              EPOLLRDHUP for input (READ, RECV, ACCEPT), EPOLLOUT for output
 *              (WRITE, SEND, CONNECT), the requested poll(2) events for POLL
 *              (same bit values), EPOLLPRI for RECV(MSG_OOB); every op also
 *              carries EPOLLERR | EPOLLHUP, which epoll always reports.
 *   waiting    op->backend_state & WAITING: the op is in this backend, on
 *              its fd's list (io.c links it), with its interest armed.
 *   armed      fdslot.backend & ARMED: the interest currently armed for the
 *              fd in the epoll set (0: disarmed, nothing can fire).
 *
 * Registration scheme: one-shot, re-armed.  Every fd is registered with
 * EPOLLONESHOT, its interest being the union of its waiting ops' interests.
 * When it fires, the kernel disarms it; we retry the ops whose interest the
 * event matches (all of them on EPOLLERR/EPOLLHUP), then re-arm with
 * EPOLL_CTL_MOD for those still waiting, or leave it disarmed.  Arming tries
 * MOD first when the slot's REG hint says the fd is in the set, ADD
 * otherwise, and falls back to the other on ENOENT / EEXIST.  The hint is
 * only a hint: epoll keys its entries on (file, fd number), so if the number
 * was closed and reused for another file behind our back, MOD answers ENOENT
 * and we ADD the new file; nothing we cache can make us miss an event.
 *
 * Invariants
 *   E1  every op reaches weft__io_complete exactly once (io.h I1), from
 *       issue (first try, or arming failed), from an event, or from cancel;
 *       after that this file never touches it (I3).  The WAITING bit is
 *       cleared before the call.
 *   E2  outside this file's functions, for each fd slot, armed == the union
 *       of the interests of the waiting ops on the fd's list (0 when none).
 *       Inside poll(), between an event (which disarmed the fd) and the
 *       re-arm, armed is 0.  Only this file makes ops leave the waiting
 *       state (io.c's timeouts and closes go through cancel()), so E2 holds
 *       without scanning.  Where it could break (the fd closed under a
 *       waiting op without weft_close, a user error; or a helper that
 *       cancels an op on a fd whose event the owner holds, unhandled, from
 *       a wait it made without the lock: the cancel re-arms what the event
 *       disarmed), the error is in the safe direction: an extra event,
 *       retried and found not ready.
 *   E3  an op that waits has had a non-blocking try that found it not ready
 *       after (or while) its interest was last armed, so no readiness edge
 *       is lost: arming with MOD/ADD checks readiness at once (epoll polls
 *       the file when the interest is set), and a second op whose interest
 *       is already armed relies on the arm that is still pending.
 *
 * Choices
 *   - One-shot rather than edge-triggered persistent registration (mio,
 *     Go's netpoll).  Edge-triggered needs one epoll_ctl per fd lifetime,
 *     but weft has no fd lifetime: fds are plain ints, closed with close()
 *     as often as with weft_close, so a cached "registered" flag is wrong
 *     after reuse and an op would wait forever.  Worse, fibers migrate, so a
 *     busy socket would end up registered in every worker's set and each of
 *     its edges would wake every worker.  One-shot costs one epoll_ctl per
 *     wait (the same as validating an edge-triggered registration would),
 *     and a disarmed entry in another worker's set never fires.  Cost: a
 *     condition that stays true and that no retry clears spins the waiter
 *     (level semantics): an fd whose error queue is not read (MSG_ERRQUEUE,
 *     zero-copy or timestamp notifications) wakes a waiting reader at every
 *     re-arm.  libuv has the same behaviour.  EPOLLRDHUP is armed only for
 *     input interest, where the retried read reports 0, so it cannot spin a
 *     lone writer.
 *   - Entries are never deleted when a wait ends by an event (the fd stays
 *     in the set, disarmed; the next wait needs one MOD, not an ADD), but
 *     are deleted (EPOLL_CTL_DEL) when cancel() leaves no waiter, because a
 *     cancel usually precedes a close and an armed entry of a file kept
 *     alive by a dup() would fire for a reused number.
 *   - O_NONBLOCK.  RECV and SEND pass MSG_DONTWAIT and leave the fd alone.
 *     ACCEPT, CONNECT and READ/WRITE on pipes, ttys, character devices,
 *     eventfds and the like need the fd itself non-blocking: the epoll
 *     backend puts the fds it works on in non-blocking mode (fcntl, only
 *     when not already set), as libuv, Go and Tokio do.  That flag belongs
 *     to the open file description, so other holders of it (a shell sharing
 *     a tty) see it too.  Whether an fd is non-blocking cannot be cached by
 *     fd number (the number may be closed and reused for a blocking file,
 *     whose read would then block the worker), so these ops pay one
 *     fcntl(F_GETFL) each, READ/WRITE on sockets excepted (below).
 *   - READ/WRITE need the file type, from fstat: regular files, block
 *     devices and directories are read and written synchronously, on the
 *     worker, because epoll cannot make disk I/O asynchronous (they are
 *     always "ready"); libuv sends them to a thread pool instead, and
 *     io_uring is the real answer.  Files that fstat as regular yet block
 *     (tracefs trace_pipe, some FUSE files) block the worker unless opened
 *     O_NONBLOCK.  Two facts are cached in fdslot.backend because a stale
 *     value is harmless: SOCK (the fd was a stream or datagram socket:
 *     READ/WRITE become recv/send(MSG_DONTWAIT), exactly what read/write do
 *     on a socket, with no fstat nor fcntl; a reused number answers
 *     ENOTSOCK and is looked at again) and NBFD (the fd was a pipe, tty,
 *     eventfd...: try F_GETFL first and, when O_NONBLOCK is set, which we
 *     set the first time, skip the fstat; nothing non-blocking can block,
 *     whatever file the number names by now; without O_NONBLOCK the number
 *     may name a regular file now, so fstat looks).  So READ/WRITE cost, in
 *     system calls besides their own: sockets 0, pipes and the like 1,
 *     files 1 (fstat).  SOCK_SEQPACKET sockets are not cached as SOCK,
 *     since write() adds MSG_EOR there.
 *   - EAGAIN is never a result: it means "wait".  EINTR is retried,
 *     except from connect(), where the connection goes on in the background
 *     and we wait for EPOLLOUT as for EINPROGRESS, and close(), where the fd
 *     is gone anyway (result 0).  A CONNECT that gives EAGAIN (an AF_UNIX
 *     listener's full backlog) calls connect() again on each wake-up; the
 *     socket looks writable meanwhile, so this spins until the backlog
 *     drains, for want of anything to wait on.  The peer's reset or
 *     shutdown arrives as EPOLLHUP/EPOLLERR/EPOLLRDHUP, which wake every
 *     waiter (input waiters for RDHUP); the retried call then reports 0,
 *     -ECONNRESET or -EPIPE.
 *   - After one op of a kind (same opcode, flags and method) finds the fd
 *     not ready during an event, the others of that kind on the fd are not
 *     tried in the same pass: N fibers accepting on one socket cost one
 *     accept per connection plus one, not N per wake-up.
 *   - After a RECV's first try on a fd says EAGAIN (request-response
 *     traffic: the reply to what was just sent is not there yet), the next
 *     three RECVs on it are armed at once, without the non-blocking recv
 *     that would most likely say EAGAIN again: three system calls fewer in
 *     four messages.  The fourth tries first again, so a fd whose data
 *     turns out to be waiting (a busy server) goes back to trying first
 *     after at most three needless rounds through epoll.  E3 holds all the
 *     same, since arming checks readiness.  A full read (bulk data) or a
 *     first try that finds data ends it (the slot's RWAIT count); a stale
 *     count on a reused number costs a round through epoll, and a fd epoll
 *     refuses is tried as usual.
 *   - A RECV is also armed at once, without a first try, when its worker
 *     has not reaped its set for WEFT_IO_FAIR_NS (behind()): its tasks are
 *     long or many, and data that other connections sent earlier waits in
 *     the set.  Trying first would start this connection's next request
 *     ahead of them, again and again for a connection that is always
 *     ready: on CPU-bound requests (500 us each, 64 connections, 2
 *     workers) that made p99 10 to 20 times p50.  Through the set, the
 *     fibers queue in the order their data arrived, as io_uring's
 *     completions do.  tests/test_io_help.c: recv_waits_its_turn.
 *   - ACCEPT_MULTI stays waiting after each connection it accepts (handed
 *     to weft__io_deliver): a pass accepts until EAGAIN, at most
 *     MULTI_BATCH, and only an error or a cancel completes the op.
 *   - A fd epoll cannot watch (EPERM: regular files, directories) that still
 *     says EAGAIN completes with -EPERM, the error arming gave; no fd of the
 *     usual kinds gets there.
 *   - RECV with MSG_WAITALL returns what is there when the socket becomes
 *     readable (maybe short, as after a signal), not the full length.
 *   - Timeouts: epoll_pwait2 (5.11) for nanosecond precision, through
 *     syscall() so that C libraries without its wrapper (glibc < 2.35)
 *     need only its number; ENOSYS (or seccomp's
 *     EPERM) switches this worker to epoll_wait with the timeout rounded up
 *     to whole milliseconds, so it never returns before a deadline.
 *
 * Threads.  Everything here runs on the owner worker's thread (io.h); the
 * wake-up from other threads is io.c's write to wake_fd, which this set
 * watches level-triggered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io.h"
#include "worker.h"

/* Events taken per epoll_wait.  One call per scheduler pass; 128 covers a
 * busy worker's ready fds without a second call, and what does not fit is
 * reported by the next call (epoll rotates its ready list). */
#define EP_EVENTS 128
#define HELP_EVENTS 32 /* events a helper takes from a peer's set at once */

/* epoll_event.data of the wake eventfd; fds are stored as their
 * non-negative value, so this cannot clash. */
#define WAKE_TAG UINT64_MAX

/* fdslot.backend */
#define SLOT_ARMED 0xffffu    /* interest armed in the set (E2) */
#define SLOT_REG (1u << 16)   /* hint: the fd is (probably) in the set */
#define SLOT_SOCK (1u << 17)  /* hint: last seen as a non-seqpacket socket */
#define SLOT_NBFD (1u << 18)  /* hint: last seen as neither socket nor file */
/* hint: RECVs that may wait before trying (see Choices), a count */
#define SLOT_RWAIT_SHIFT 19
#define SLOT_RWAIT (3u << SLOT_RWAIT_SHIFT)

/* op->backend_state */
#define OP_WAITING (1u << 0)    /* interest armed, waiting for an event */
#define OP_CONNECTING (1u << 1) /* CONNECT in progress: report SO_ERROR */
#define OP_CONN_AGAIN (1u << 2) /* CONNECT got EAGAIN: call connect again */
#define OP_M_SOCK (1u << 3)     /* READ/WRITE through recv/send */
#define OP_M_SYNC (1u << 4)     /* READ/WRITE on a file: synchronous */
#define OP_M_NB (1u << 5)       /* READ/WRITE on a non-blocking fd */
#define OP_METHOD (OP_M_SOCK | OP_M_SYNC | OP_M_NB)

#define EV_ALWAYS (EPOLLERR | EPOLLHUP)
#define EV_IN (EPOLLIN | EPOLLRDHUP)
/* poll(2) events that epoll can wait for; the values are epoll's. */
#define EV_POLLABLE (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | \
                     EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP)

_Static_assert(POLLIN == EPOLLIN && POLLPRI == EPOLLPRI && POLLOUT == EPOLLOUT &&
               POLLERR == EPOLLERR && POLLHUP == EPOLLHUP && POLLRDNORM == EPOLLRDNORM &&
               POLLRDBAND == EPOLLRDBAND && POLLWRNORM == EPOLLWRNORM &&
               POLLWRBAND == EPOLLWRBAND && POLLMSG == EPOLLMSG && POLLRDHUP == EPOLLRDHUP,
               "poll(2) and epoll event bits differ");
_Static_assert(((EV_POLLABLE | EV_ALWAYS) & ~SLOT_ARMED) == 0, "interest does not fit SLOT_ARMED");

/* "Not ready: wait".  Never a result (weft.h), so free for this use. */
#define NOT_READY (-EAGAIN)
/* Connections an ACCEPT_MULTI op takes per pass before it waits again. */
#define MULTI_BATCH 64

struct ep_state {
	int epfd;
	bool pwait2; /* epoll_pwait2 not known to be missing */
	struct epoll_event ev[EP_EVENTS];
};

static inline struct ep_state *state(struct weft__worker *w)
{
	return w->io->be;
}

/* ---- registration ------------------------------------------------------------ */

/* The union of the interests of the waiting ops on s. */
static uint32_t interest(const struct weft__fdslot *s)
{
	uint32_t want = 0;

	for (weft_op_t *op = s->head; op; op = weft__op_priv(op)->fd_next)
		if (weft__op_priv(op)->backend_state & OP_WAITING)
			want |= weft__op_priv(op)->events;
	return want;
}

/* Make fd's armed interest want (0: delete the entry).  Returns 0 or the
 * negative errno of epoll_ctl, leaving s unchanged then.  Owner worker. */
static int arm(struct ep_state *be, int fd, struct weft__fdslot *s, uint32_t want)
{
	struct epoll_event ev = { .events = want | EPOLLONESHOT, .data.u64 = (uint32_t)fd };
	int op, other, again;

	if (want == (s->backend & SLOT_ARMED))
		return 0;
	if (want == 0) {
		/* ENOENT or EBADF: the fd was closed, its entry is gone. */
		(void)epoll_ctl(be->epfd, EPOLL_CTL_DEL, fd, NULL);
		s->backend &= ~(SLOT_ARMED | SLOT_REG);
		return 0;
	}
	if (s->backend & SLOT_REG) {
		op = EPOLL_CTL_MOD, other = EPOLL_CTL_ADD, again = ENOENT;
	} else {
		op = EPOLL_CTL_ADD, other = EPOLL_CTL_MOD, again = EEXIST;
	}
	if (epoll_ctl(be->epfd, op, fd, &ev) < 0 &&
	    (errno != again || epoll_ctl(be->epfd, other, fd, &ev) < 0))
		return -errno;
	s->backend = (s->backend & ~SLOT_ARMED) | SLOT_REG | want;
	return 0;
}

/* ---- the operations, tried without blocking ----------------------------------
 * Each returns the op's result, or NOT_READY with op->events set to the
 * interest to wait for.  revents is the event that woke the op, 0 on the
 * first try. */

static ssize_t res_of(ssize_t r)
{
	if (r >= 0)
		return r;
	return errno == EWOULDBLOCK ? NOT_READY : -errno;
}

/* Set O_NONBLOCK on fd unless set; fl is its F_GETFL, or -1 if not known.
 * Returns 0 or a negative errno. */
static int nonblock(int fd, int fl)
{
	if (fl < 0 && (fl = fcntl(fd, F_GETFL)) < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Choose how READ/WRITE runs on op->fd (an OP_M_* method), looking at the
 * file only as far as the slot's hints leave open (see "Choices").  Returns
 * the method, or a negative errno that is the op's result. */
static int rw_method(weft_op_t *op, struct weft__fdslot *s)
{
	bool sockable = op->off == -1 && op->len > 0; /* plain read/write == recv/send */
	uint32_t hint = s ? s->backend & (SLOT_SOCK | SLOT_NBFD) : 0;
	struct stat st;
	int fl = -1, rc;

	if ((hint & SLOT_SOCK) && sockable)
		return (int)OP_M_SOCK;
	if (hint & SLOT_NBFD) {
		/* Already non-blocking: nothing can block, whatever the file is
		 * now.  Otherwise the number may name a file now: look. */
		if ((fl = fcntl(op->fd, F_GETFL)) < 0)
			return -errno;
		if (fl & O_NONBLOCK)
			return (int)OP_M_NB;
	}
	if (fstat(op->fd, &st) < 0)
		return -errno;
	if (s)
		s->backend &= ~(SLOT_SOCK | SLOT_NBFD);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
		return (int)OP_M_SYNC;
	if (S_ISSOCK(st.st_mode)) {
		int type = 0;
		socklen_t tl = sizeof type;
		if (getsockopt(op->fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type != SOCK_SEQPACKET) {
			if (s)
				s->backend |= SLOT_SOCK;
			if (sockable)
				return (int)OP_M_SOCK;
		}
	} else if (s) {
		s->backend |= SLOT_NBFD;
	}
	rc = nonblock(op->fd, fl);
	if (rc < 0)
		return rc;
	return (int)OP_M_NB;
}

static ssize_t try_rw(weft_op_t *op, struct weft__op *p, struct weft__fdslot *s)
{
	bool rd = op->opcode == WEFT_OP_READ;
	ssize_t r;

	p->events = EV_ALWAYS | (rd ? EV_IN : EPOLLOUT);
	if (!(p->backend_state & OP_METHOD)) {
		int m = rw_method(op, s);
		if (m < 0)
			return m;
		p->backend_state |= (uint32_t)m;
	}
	if (p->backend_state & OP_M_SOCK) {
		/* read/write on a socket are recv/send with no flags. */
		do
			r = rd ? recv(op->fd, op->buf, op->len, MSG_DONTWAIT)
			       : send(op->fd, op->buf, op->len, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r < 0 && errno == ENOTSOCK) {
			/* The number now names another file: look again. */
			if (s)
				s->backend &= ~SLOT_SOCK;
			p->backend_state &= ~OP_METHOD;
			return try_rw(op, p, s);
		}
		return res_of(r);
	}
	do {
		if (op->off == -1)
			r = rd ? read(op->fd, op->buf, op->len) : write(op->fd, op->buf, op->len);
		else
			r = rd ? pread(op->fd, op->buf, op->len, op->off)
			       : pwrite(op->fd, op->buf, op->len, op->off);
	} while (r < 0 && errno == EINTR);
	return res_of(r);
}

static ssize_t try_recv(weft_op_t *op, struct weft__op *p)
{
	ssize_t r;

	if (op->flags & MSG_ERRQUEUE)
		p->events = EV_ALWAYS; /* the error queue shows as EPOLLERR */
	else
		p->events = EV_ALWAYS | (op->flags & MSG_OOB ? EPOLLPRI : EV_IN);
	do
		r = recv(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return res_of(r);
}

static ssize_t try_send(weft_op_t *op, struct weft__op *p)
{
	ssize_t r;

	p->events = EV_ALWAYS | EPOLLOUT;
	do
		r = send(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return res_of(r);
}

static ssize_t try_accept(weft_op_t *op, struct weft__op *p, uint32_t revents)
{
	int r;

	p->events = EV_ALWAYS | EV_IN;
	if (!revents && (r = nonblock(op->fd, -1)) < 0)
		return r;
	do
		r = accept4(op->fd, op->addr, op->addr ? &op->addrlen : NULL, op->flags);
	while (r < 0 && errno == EINTR);
	return res_of(r);
}

static ssize_t try_connect(weft_op_t *op, struct weft__op *p, uint32_t revents)
{
	int r, err = 0;
	socklen_t len = sizeof err;

	p->events = EV_ALWAYS | EPOLLOUT;
	if (p->backend_state & OP_CONNECTING) {
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return -errno;
		if (err)
			return err == EINPROGRESS || err == EALREADY ? NOT_READY : -err;
		/* Writable and no error: connected.  An error or hang-up whose
		 * error someone else already read (SO_ERROR clears it): not. */
		return revents & EPOLLOUT ? 0 : -ENOTCONN;
	}
	if (!revents && (r = nonblock(op->fd, -1)) < 0)
		return r;
	p->backend_state &= ~OP_CONN_AGAIN;
	if (connect(op->fd, op->addr, op->addrlen) == 0)
		return 0;
	if (errno == EINPROGRESS || errno == EINTR) {
		/* EINTR: the connection goes on in the background. */
		p->backend_state |= OP_CONNECTING;
		return NOT_READY;
	}
	if (errno == EAGAIN) { /* AF_UNIX: backlog full (see Choices) */
		p->backend_state |= OP_CONN_AGAIN;
		return NOT_READY;
	}
	return -errno;
}

static ssize_t try_poll(weft_op_t *op, struct weft__op *p, uint32_t revents)
{
	uint32_t want = (uint32_t)op->flags & EV_POLLABLE;
	struct pollfd pfd = { .fd = op->fd, .events = (short)op->flags };
	int r;

	p->events = EV_ALWAYS | want;
	if (revents)
		return revents & (want | EV_ALWAYS) ? (ssize_t)(revents & (want | EV_ALWAYS)) : NOT_READY;
	do
		r = poll(&pfd, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (pfd.revents & POLLNVAL)
		return -EBADF; /* as io_uring's POLL_ADD reports it */
	return pfd.revents ? (ssize_t)(uint16_t)pfd.revents : NOT_READY;
}

/* Try op once, without blocking.  Owner worker. */
static ssize_t attempt(weft_op_t *op, struct weft__fdslot *s, uint32_t revents)
{
	struct weft__op *p = weft__op_priv(op);

	switch (op->opcode) {
	case WEFT_OP_READ:
	case WEFT_OP_WRITE:
		return try_rw(op, p, s);
	case WEFT_OP_RECV:
		return try_recv(op, p);
	case WEFT_OP_SEND:
		return try_send(op, p);
	case WEFT_OP_ACCEPT:
	case WEFT_OP_ACCEPT_MULTI:
		return try_accept(op, p, revents);
	case WEFT_OP_CONNECT:
		return try_connect(op, p, revents);
	case WEFT_OP_POLL:
		return try_poll(op, p, revents);
	default:
		return -EINVAL;
	}
}

/* Try op; an ACCEPT_MULTI op hands each connection over and tries again,
 * so its result is what ended the pass: NOT_READY (also after MULTI_BATCH
 * connections: the re-armed fd reports the rest at once) or an error.
 * Owner worker. */
static ssize_t attempt_all(struct weft__worker *w, weft_op_t *op, struct weft__fdslot *s, uint32_t revents)
{
	ssize_t res = attempt(op, s, revents);
	unsigned n = 0;

	while (op->opcode == WEFT_OP_ACCEPT_MULTI && res >= 0) {
		weft__io_deliver(w, op, (int)res);
		if (++n == MULTI_BATCH)
			return NOT_READY;
		res = attempt(op, s, revents);
	}
	return res;
}

/* A RECV of ordinary data, the only op that may wait before trying. */
static inline bool plain_recv(const weft_op_t *op)
{
	return op->opcode == WEFT_OP_RECV && op->len > 0 && !(op->flags & (MSG_OOB | MSG_ERRQUEUE));
}

/* ---- the backend ---------------------------------------------------------------- */

/* Owner worker only, once, before any other call. */
static int ep_init(struct weft__worker *w, const weft_config_t *cfg)
{
	struct ep_state *be = calloc(1, sizeof(*be));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TAG };
	int rc;

	(void)cfg;
	if (!be)
		return -ENOMEM;
#ifdef SYS_epoll_pwait2
	be->pwait2 = true;
#endif
	be->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (be->epfd < 0) {
		rc = -errno;
		free(be);
		return rc;
	}
	/* Level-triggered: a wake-up left unread makes every wait return at
	 * once until io.c drains it, so none is lost. */
	if (epoll_ctl(be->epfd, EPOLL_CTL_ADD, w->io->wake_fd, &ev) < 0) {
		rc = -errno;
		close(be->epfd);
		free(be);
		return rc;
	}
	w->io->be = be;
	return 0;
}

/* Owner worker only; io.c has completed every op first. */
static void ep_fini(struct weft__worker *w)
{
	struct ep_state *be = state(w);

	if (!be)
		return;
	close(be->epfd);
	free(be);
	w->io->be = NULL;
}

/* Whether w's set has gone unreaped for WEFT_IO_FAIR_NS: its tasks are
 * long, or many.  A RECV that found its data at once would then start the
 * next request of its connection ahead of those whose data waits in the
 * set (io_uring queues every completion; epoll's first try does not). */
static bool behind(struct weft__worker *w)
{
	return (int64_t)weft__now_ns() - atom_load_64(&w->io->last_reap_ns) >= WEFT_IO_FAIR_NS;
}

/* Owner worker only.  op is PENDING and on its fd's list. */
static int ep_issue(struct weft__worker *w, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);
	struct weft__fdslot *s;
	ssize_t res;
	int rc;

	p->backend_state = 0;
	p->events = 0;
	switch (op->opcode) {
	case WEFT_OP_SLEEP:
		return 0; /* io.c's timer heap ends it */
	case WEFT_OP_CLOSE:
		s = weft__io_fdslot(w, op->fd);
		/* The number is about to be free for reuse: forget the hints.  The
		 * entry leaves the set with the file's last close. */
		if (s && !interest(s))
			s->backend = 0;
		rc = close(op->fd);
		weft__io_complete(w, op, rc < 0 && errno != EINTR ? -errno : 0);
		return 0;
	case WEFT_OP_READ:
	case WEFT_OP_WRITE:
	case WEFT_OP_RECV:
	case WEFT_OP_SEND:
	case WEFT_OP_ACCEPT:
	case WEFT_OP_ACCEPT_MULTI:
	case WEFT_OP_CONNECT:
	case WEFT_OP_POLL:
		break;
	default:
		return -EINVAL;
	}
	s = op->fd >= 0 ? weft__io_fdslot(w, op->fd) : NULL;
	if (s && plain_recv(op) && ((s->backend & SLOT_RWAIT) || behind(w))) {
		/* Request-response traffic: the reply is likely not there yet,
		 * so wait without the recv that would say so; or this worker
		 * is behind, and what arrived must queue behind what others
		 * sent before it (see Choices). */
		if (s->backend & SLOT_RWAIT)
			s->backend -= 1u << SLOT_RWAIT_SHIFT;
		p->events = EV_ALWAYS | EV_IN;
		if (arm(state(w), op->fd, s, (s->backend & SLOT_ARMED) | p->events) == 0) {
			p->backend_state |= OP_WAITING;
			return 0;
		}
		s->backend &= ~SLOT_RWAIT; /* cannot wait on it: try it */
	}
	if (p->flags & WEFT__OPF_TRIED) {
		res = NOT_READY; /* a SEND that ep_try_first found without room */
		p->events = EV_ALWAYS | EPOLLOUT;
	} else {
		res = attempt_all(w, op, s, 0);
	}
	if (s && plain_recv(op))
		s->backend = res == NOT_READY ? s->backend | SLOT_RWAIT : s->backend & ~SLOT_RWAIT;
	if (res == NOT_READY) {
		if (!s) {
			res = -EBADF; /* not on a list: cannot happen for a valid fd */
		} else {
			rc = arm(state(w), op->fd, s, (s->backend & SLOT_ARMED) | p->events);
			if (rc == 0) {
				p->backend_state |= OP_WAITING;
				return 0;
			}
			res = rc;
		}
	}
	weft__io_complete(w, op, res);
	return 0;
}

/* Owner worker only; at most once per op, while it is pending. */
static void ep_cancel(struct weft__worker *w, weft_op_t *op)
{
	struct weft__op *p = weft__op_priv(op);

	if (p->backend_state & OP_WAITING) {
		struct weft__fdslot *s = weft__io_fdslot(w, op->fd);
		p->backend_state &= ~OP_WAITING;
		/* Narrow (or delete) the interest for the waiters left (E2).  A
		 * failure leaves the wider interest armed: extra wake-ups only. */
		if (s)
			(void)arm(state(w), op->fd, s, interest(s));
	}
	weft__io_complete(w, op, -ECANCELED);
}

/* An event for fd: retry the ops it concerns, re-arm for those left.
 * Returns the number of ops completed.  Owner worker only. */
static int on_event(struct weft__worker *w, int fd, uint32_t revents)
{
	struct weft__fdslot *s = weft__io_fdslot(w, fd);
	/* Kinds of op found not ready in this pass (see Choices). */
	struct { int opcode, flags; uint32_t method; } busy[2];
	unsigned nbusy = 0;
	weft_op_t *op, *next;
	int n = 0, rc;

	if (!s)
		return 0;
	s->backend &= ~SLOT_ARMED; /* one-shot: the kernel disarmed it */
	for (op = s->head; op; op = next) {
		struct weft__op *p = weft__op_priv(op);
		uint32_t method = p->backend_state & OP_METHOD;
		bool same = false;
		ssize_t res;

		next = p->fd_next;
		if (!(p->backend_state & OP_WAITING) || !(p->events & revents))
			continue;
		if (op->opcode != WEFT_OP_POLL && op->opcode != WEFT_OP_CONNECT &&
		    (op->len > 0 || op->opcode == WEFT_OP_ACCEPT || op->opcode == WEFT_OP_ACCEPT_MULTI)) {
			for (unsigned i = 0; i < nbusy; i++)
				same |= busy[i].opcode == op->opcode && busy[i].flags == op->flags &&
				        busy[i].method == method;
			if (same)
				continue;
		}
		res = attempt_all(w, op, s, revents);
		if (res == NOT_READY) {
			if (nbusy < 2)
				busy[nbusy].opcode = op->opcode, busy[nbusy].flags = op->flags,
				busy[nbusy].method = method, nbusy++;
			continue;
		}
		p->backend_state &= ~OP_WAITING;
		if (plain_recv(op) && !(res >= 0 && (size_t)res < op->len))
			s->backend &= ~SLOT_RWAIT; /* a full read: a stream */
		weft__io_complete(w, op, res); /* unlinks op; next is still ours */
		n++;
	}
	rc = arm(state(w), fd, s, interest(s));
	if (rc < 0) {
		/* Cannot wait any longer (fd closed under us, no memory): report
		 * the error rather than hang. */
		for (op = s->head; op; op = next) {
			struct weft__op *p = weft__op_priv(op);
			next = p->fd_next;
			if (p->backend_state & OP_WAITING) {
				p->backend_state &= ~OP_WAITING;
				weft__io_complete(w, op, rc);
				n++;
			}
		}
	}
	return n;
}

/* epoll_wait for at most timeout_ns (<0: no limit).  Returns the number of
 * events or a negative errno. */
static int wait_events(struct ep_state *be, struct epoll_event *ev, int nev, int64_t timeout_ns)
{
	int n, ms;

#ifdef SYS_epoll_pwait2
	if (timeout_ns > 0 && be->pwait2) {
		/* struct __kernel_timespec: two 64-bit fields on every ABI. */
		struct { int64_t sec, nsec; } ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
		n = (int)syscall(SYS_epoll_pwait2, be->epfd, ev, nev, &ts, NULL, (size_t)0);
		if (n >= 0)
			return n;
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		be->pwait2 = false;
	}
#endif
	if (timeout_ns < 0)
		ms = -1;
	else if (timeout_ns >= (int64_t)INT_MAX * 1000000)
		ms = INT_MAX;
	else
		ms = (int)((timeout_ns + 999999) / 1000000);
	n = epoll_wait(be->epfd, ev, nev, ms);
	return n < 0 ? -errno : n;
}

/* The owner, or a helper (timeout 0) holding the owner's lock.  A wait
 * that may block drops the lock (io.h), so a helper may reap the set while
 * its owner waits in it (woken, perhaps, but not yet back on a core): the
 * helper uses its own array, and each event goes to one of them (every
 * registration is one-shot).  What the owner then handles under the lock
 * may be stale by the helper's doing (a cancel re-armed or removed the fd
 * meanwhile): E2's safe direction, a retry that finds the fd not ready.  A
 * helper leaves the wake-up alone: the eventfd is level-triggered, so the
 * owner still sees it fire, and draining it here could lose the wake-up of
 * an owner about to park. */
static int ep_poll(struct weft__worker *w, int64_t timeout_ns)
{
	struct ep_state *be = state(w);
	struct epoll_event mine[HELP_EVENTS], *ev = be->ev;
	int n, done = 0;

	if (w->io->foreign) {
		ev = mine;
		n = wait_events(be, ev, HELP_EVENTS, 0);
	} else if (timeout_ns != 0) {
		weft__io_wait_begin(w->io);
		n = wait_events(be, ev, EP_EVENTS, timeout_ns);
		weft__io_wait_end(w->io);
	} else {
		n = wait_events(be, ev, EP_EVENTS, 0);
	}
	if (n < 0)
		return n == -EINTR ? 0 : n;
	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;
		if (tag != WAKE_TAG)
			done += on_event(w, (int)tag, ev[i].events);
		else if (!w->io->foreign)
			w->io->wake_seen = true;
	}
	return done;
}

/* A SEND needs nothing of the worker's state to be tried: io.c tries it
 * before it takes the shared state's lock.  A first try that finds no room
 * leaves the op to ep_issue, which arms it without trying again (E3: the
 * arm checks readiness). */
static bool ep_try_first(weft_op_t *op, ssize_t *res)
{
	if (op->opcode != WEFT_OP_SEND)
		return false;
	*res = try_send(op, weft__op_priv(op));
	return true;
}

/* Owner worker only.  Nothing is ever queued inside this backend. */
static int ep_busy(struct weft__worker *w)
{
	(void)w;
	return 0;
}

const struct weft__io_backend weft__io_epoll_backend = {
	.name = "epoll",
	.id = WEFT_IO_EPOLL,
	.init = ep_init,
	.fini = ep_fini,
	.issue = ep_issue,
	.cancel = ep_cancel,
	.poll = ep_poll,
	.busy = ep_busy,
	.try_first = ep_try_first,
};
