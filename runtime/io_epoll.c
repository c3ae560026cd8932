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
 *              fd in the epoll set (0: disarmed, nothing can fire); for a
 *              persistent registration, the interest of its waiting ops
 *              (the kernel's entry covers every event).
 *   trusted    the slot's persistent registration is for the file the
 *              number names now, as far as weft saw (trusted()).
 *
 * Registration schemes.  Persistent for the stream sockets that this
 * backend's ACCEPT made or its CONNECT connected, one-shot for every other
 * fd.
 *
 * One-shot, re-armed.  An fd is registered with
 * EPOLLONESHOT, its interest being the union of its waiting ops' interests.
 * When it fires, the kernel disarms it; we retry the ops whose interest the
 * event matches (all of them on EPOLLERR/EPOLLHUP), then re-arm with
 * EPOLL_CTL_MOD for those still waiting, or leave it disarmed.  Arming tries
 * MOD first when the slot's REG hint says the fd is in the set, ADD
 * otherwise, and falls back to the other on ENOENT / EEXIST.  The hint is
 * only a hint: epoll keys its entries on (file, fd number), so if the number
 * was closed and reused for another file behind our back, MOD answers ENOENT
 * and we ADD the new file; nothing we cache can make us miss an event.  Cost:
 * one epoll_ctl per wait.
 *
 * Persistent.  A stream socket from this backend's ACCEPT or CONNECT is
 * registered once per worker, edge-triggered for everything (EPOLLET | IN | OUT | RDHUP |
 * PRI), and stays registered across waits, so a wait costs no system call:
 * an echo server's message costs recv + send, as in a plain epoll loop, not
 * also an epoll_ctl.  What makes it safe:
 *   - Trust.  weft has no fd lifetime (plain ints, closed with close() as
 *     often as with weft_close), so the slot's registration is trusted only
 *     for the life of the number it was made in: fd generations (below),
 *     bumped by ACCEPT when it makes the file, by CONNECT when the
 *     connection is made (its own waits are one-shot), and by weft_close /
 *     CLOSE when they close it.  An untrusted slot takes the one-shot path, whose
 *     MOD/ADD re-registers the file the number names now.
 *   - Edges are reported once.  So every way in which input (or room) can
 *     be there with no edge to come makes the next op try first: an event
 *     that no waiting op of its direction looked at sets MAYIN / MAYOUT; an
 *     input op that got something sets MAYIN, except a plain recv that got
 *     less than it asked for (a stream socket: it drained the queue); a
 *     plain recv that found nothing, or that drained, clears it, and an
 *     output op that found no room clears MAYOUT.  A registration system
 *     call clears both (the kernel polls the file as it takes the
 *     interest).  A plain recv on a trusted slot without MAYIN waits
 *     without trying; a SEND whose first try (io.c) found no room (outside
 *     the lock, where a helper may reap its edge meanwhile) tries again
 *     under the lock when MAYOUT is set.
 *   - What weft does not see.  A number closed with close() and reused
 *     keeps looking trusted.  So every wait that relied on a trusted
 *     registration without a system call is queued, and if the same wait
 *     is still going after WEFT_EPOLL_CHECK_MS (default 20 ms) the owner
 *     checks it: EPOLL_CTL_MOD, which also reports what is ready, or ADD
 *     on ENOENT.  Such a number costs its op at most that long; a wait that
 *     long can afford the system call.  WEFT_EPOLL_CHECK_MS=0 turns
 *     persistent registrations off.  The same check bounds the rarer
 *     misses: a short read that stops at an urgent mark (SO_OOBINLINE) or
 *     a SO_RCVLOWAT above what came.
 *   - Strays.  Fibers migrate, so a socket ends up registered in several
 *     workers' sets, and each edge wakes each of them.  A trusted slot with
 *     no op at all on its list that gets two events with no op issued in
 *     between deletes its entry (one epoll_ctl, unordered with a close
 *     of the number elsewhere, and harmless either way: on_event), so a
 *     set stops hearing about sockets served elsewhere.  An entry of a file that weft_close
 *     closed but a dup() or a child process keeps open stays registered
 *     and may wake its worker until the file's last close (the one-shot
 *     scheme's entry fires once at most).
 *   - Listening sockets, and fds the program made and weft did not connect
 *     (socketpair(), pipes, ttys, a socket before its CONNECT), stay
 *     one-shot.
 *
 * Invariants
 *   E1  every op reaches weft__io_complete exactly once (io.h I1), from
 *       issue (first try, or arming failed), from an event, or from cancel;
 *       after that this file never touches it (I3).  The WAITING bit is
 *       cleared before the call.
 *   E2  outside this file's functions, for each fd slot, armed == the union
 *       of the interests of the waiting ops on the fd's list (0 when none).
 *       Inside poll(), between an event (which disarmed a one-shot fd) and
 *       the re-arm, armed is 0.  Only this file makes ops leave the waiting
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
 *       is already armed relies on the arm that is still pending.  On a
 *       trusted persistent registration: its try (or, for a plain recv
 *       without MAYIN, the drain that cleared it) came after every edge its
 *       set reported for its direction, under the lock under which events
 *       are reaped, so whatever is ready now came after it and makes an
 *       edge that finds the op waiting.
 *   E4  a wait on a trusted registration that made no system call is in
 *       the check queue (fdslot.seq names the latest), so a registration
 *       that is not what weft believes costs a wait at most
 *       WEFT_EPOLL_CHECK_MS (plus a poll's lateness), never forever.
 *
 * Choices
 *   - Persistent registrations only where weft saw the file made (above),
 *     one-shot elsewhere.  mio and Go's netpoll register every fd once,
 *     but own its lifetime; a cached "registered" flag for a plain int is
 *     wrong after the number's reuse, and an op would wait forever without
 *     the generations and the check.  One-shot costs one epoll_ctl per
 *     wait, and a disarmed entry in another worker's set never fires.  On a
 *     one-shot fd, a condition that stays true and that no retry clears spins the waiter
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
 *   - On a one-shot fd, after a RECV's first try says EAGAIN (request-response
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
 * Threads.  Everything here runs on the owner worker's thread (io.h), but
 * the fd generations, which are process-wide (weft__epoll_fd_closing runs
 * on whatever thread calls weft_close); the wake-up from other threads is
 * io.c's write to wake_fd, which this set watches level-triggered.
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
/* Persistent registrations (see there). */
#define SLOT_ET (1u << 21)     /* registered edge-triggered, for fdslot.gen */
#define SLOT_MAYIN (1u << 22)  /* input may be there that no edge will report */
#define SLOT_MAYOUT (1u << 23) /* room may be there that no edge will report */
#define SLOT_STRAY (1u << 24)  /* an event came while no op was on the fd */

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
#define EV_ET (EPOLLET | EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI)
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

/* A wait on a persistent registration, to be checked at due. */
struct check {
	int fd;
	uint32_t seq; /* fdslot.seq when it began: still the same wait? */
	int64_t due;
};

struct ep_state {
	int epfd;
	bool pwait2; /* epoll_pwait2 not known to be missing */
	int64_t check_ns; /* WEFT_EPOLL_CHECK_MS; 0: no persistent registrations */
	struct check *cq; /* FIFO ring (due order), ccap a power of two */
	unsigned chead, clen, ccap;
	struct epoll_event ev[EP_EVENTS];
};

static inline struct ep_state *state(struct weft__worker *w)
{
	return w->io->be;
}

/* ---- fd generations ------------------------------------------------------------
 * Process-wide, like fd numbers: one word per number below GEN_FDS, in
 * chunks made on first use and kept for the life of the process.  Bit 0:
 * the number's file is a SOCK_STREAM socket whose connection an epoll
 * ACCEPT or CONNECT made (persistent registrations are for those alone); the rest counts the
 * births and closes weft saw.  A slot's persistent registration is for one
 * generation (fdslot.gen): weft_close or another birth of the number ends
 * its trust on every worker.  The word is written when weft makes or
 * closes the file, before the fd reaches anyone else (or after the last
 * op on it), so the happens-before chain that brings the fd to an op also
 * brings the word; relaxed atomics suffice.  Two threads write the same
 * word only if the program closes a number that another op is creating,
 * its own race.  A wrap of the count after 2^31 lives of one number could
 * make a stale registration look current: the wait check below bounds that
 * too. */
#define GEN_CHUNK_LOG2 12
#define GEN_FDS (1 << 20)
static uint32_t *gen_chunks[GEN_FDS >> GEN_CHUNK_LOG2];

/* fd's word, or NULL if its chunk was never made (or fd is out of range).
 * Inline: the hot path (every op on a persistent registration) reads it. */
static inline uint32_t *gen_word(int fd)
{
	uint32_t *c;

	if (fd < 0 || fd >= GEN_FDS)
		return NULL;
	c = atom_load_acq_ptr((void *const *)&gen_chunks[fd >> GEN_CHUNK_LOG2]);
	return c ? &c[fd & ((1 << GEN_CHUNK_LOG2) - 1)] : NULL;
}

/* fd's word, its chunk made if need be; NULL out of range or memory. */
static uint32_t *gen_word_make(int fd)
{
	uint32_t *g = gen_word(fd), *fresh;

	if (g || fd < 0 || fd >= GEN_FDS)
		return g;
	if (!(fresh = calloc(1u << GEN_CHUNK_LOG2, sizeof(*fresh))))
		return NULL;
	if (!atom_cas_ptr((void **)&gen_chunks[fd >> GEN_CHUNK_LOG2], NULL, fresh))
		free(fresh); /* another thread made it first */
	return gen_word(fd);
}

static inline uint32_t gen_of(int fd)
{
	const uint32_t *g = gen_word(fd);

	return g ? atom_load_32(g) : 0;
}

/* A new life for the number fd: born (a stream socket connected by ACCEPT
 * or CONNECT) or not.  Only a birth needs a chunk: a number with none has
 * generation 0, which no registration trusts. */
static void gen_next(int fd, bool born)
{
	uint32_t *g = born ? gen_word_make(fd) : gen_word(fd);

	if (g)
		atom_store_32(g, ((atom_load_32(g) | 1) + 1) | (born ? 1 : 0));
}

void weft__epoll_fd_closing(int fd)
{
	gen_next(fd, false);
}

/* weft saw the file fd names begin a connection (ACCEPT made it, CONNECT
 * connected it): a new life, born if it is a stream socket. */
static void new_life(int fd)
{
	int type = 0;
	socklen_t tl = sizeof type;

	gen_next(fd, getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM);
}

/* Whether s's persistent registration is for the file fd names now, as far
 * as weft saw (the wait check covers what it did not see). */
static inline bool trusted(const struct weft__fdslot *s, int fd)
{
	return (s->backend & SLOT_ET) && s->gen == gen_of(fd);
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

/* Record want as s's armed interest, the kernel's entry left as it is. */
static inline void set_armed(struct weft__fdslot *s, uint32_t want)
{
	s->backend = (s->backend & ~SLOT_ARMED) | want;
}

/* Make fd's armed interest want (0: delete the entry).  Returns 0 or the
 * negative errno of epoll_ctl, leaving s unchanged then.  Owner worker. */
static int arm(struct ep_state *be, int fd, struct weft__fdslot *s, uint32_t want)
{
	struct epoll_event ev = { .events = want | EPOLLONESHOT, .data.u64 = (uint32_t)fd };
	uint32_t gen;
	int op, other, again;

	if (want == (s->backend & SLOT_ARMED))
		return 0;
	if (trusted(s, fd)) {
		/* Persistent: the kernel's entry stays as it is. */
		set_armed(s, want);
		return 0;
	}
	if (want == 0) {
		/* ENOENT or EBADF: the fd was closed, its entry is gone. */
		(void)epoll_ctl(be->epfd, EPOLL_CTL_DEL, fd, NULL);
		s->backend &= ~(SLOT_ARMED | SLOT_REG | SLOT_ET);
		return 0;
	}
	gen = be->check_ns ? gen_of(fd) : 0;
	if (gen & 1)
		ev.events = EV_ET;
	if (s->backend & SLOT_REG) {
		op = EPOLL_CTL_MOD, other = EPOLL_CTL_ADD, again = ENOENT;
	} else {
		op = EPOLL_CTL_ADD, other = EPOLL_CTL_MOD, again = EEXIST;
	}
	if (epoll_ctl(be->epfd, op, fd, &ev) < 0 &&
	    (errno != again || epoll_ctl(be->epfd, other, fd, &ev) < 0))
		return -errno;
	/* The kernel polled the file as it took the interest: what is ready
	 * now comes as an event, so nothing "may" be left unreported. */
	s->backend = (s->backend & ~(SLOT_ARMED | SLOT_ET | SLOT_MAYIN | SLOT_MAYOUT | SLOT_STRAY)) |
	             SLOT_REG | want | ((gen & 1) ? SLOT_ET : 0);
	s->gen = gen;
	s->seq++; /* checks queued for earlier waits are moot */
	return 0;
}

/* Set s's interest to want (nonzero) with a system call even where its
 * persistent registration is trusted: the call re-reports what is ready
 * and re-registers a file the number names now but the set lacks. */
static int refresh(struct ep_state *be, int fd, struct weft__fdslot *s, uint32_t want)
{
	uint32_t saved = s->backend;
	int rc;

	s->backend &= ~(SLOT_ET | SLOT_ARMED);
	if ((rc = arm(be, fd, s, want)) < 0)
		s->backend = saved;
	return rc;
}

/* Complete every waiting op on s with rc: it cannot wait any longer (fd
 * closed under us, no memory), and an error beats a hang.  Returns how
 * many.  Owner worker. */
static int fail_waiters(struct weft__worker *w, struct weft__fdslot *s, int rc)
{
	weft_op_t *op, *next;
	int n = 0;

	for (op = s->head; op; op = next) {
		struct weft__op *p = weft__op_priv(op);
		next = p->fd_next;
		if (p->backend_state & OP_WAITING) {
			p->backend_state &= ~OP_WAITING;
			weft__io_complete(w, op, rc);
			n++;
		}
	}
	s->backend &= ~SLOT_ARMED;
	return n;
}

/* A wait began on a trusted registration without a system call: check it
 * at due if it is still the same wait then.  Returns 0, or the negative
 * errno of the check made at once when the queue cannot grow.  The clock
 * is the end of the worker's last reap (one clock read per message cost
 * 1% of an echo server's CPU): never later than now, so a check can only
 * come early, and due stays in queue order.  Owner worker. */
static int check_later(struct weft__worker *w, int fd, struct weft__fdslot *s)
{
	struct ep_state *be = state(w);
	struct check *v;

	if (be->clen == be->ccap) {
		unsigned cap = be->ccap ? 2 * be->ccap : 64;
		struct check *q = malloc(cap * sizeof(*q));
		if (!q)
			return refresh(be, fd, s, s->backend & SLOT_ARMED);
		for (unsigned i = 0; i < be->clen; i++)
			q[i] = be->cq[(be->chead + i) & (be->ccap - 1)];
		free(be->cq);
		be->cq = q, be->chead = 0, be->ccap = cap;
	}
	v = &be->cq[(be->chead + be->clen++) & (be->ccap - 1)];
	v->fd = fd;
	v->seq = ++s->seq;
	v->due = atom_load_64(&w->io->last_reap_ns) + be->check_ns;
	return 0;
}

/* Check the waits that are due at now: one EPOLL_CTL_MOD each (ADD if the
 * number names a file the set lacks), which reports what is ready.  Adds
 * the ops it had to fail to *done; returns the ns until the next is due,
 * or -1 if none is queued.  Waits that ended leave the head at once,
 * due or not: most end long before their check (a server's next request
 * comes sooner than check_ns), and counting the time to a dead entry's
 * due bounded every park of a worker at 10k req/s by a 100-300 us timer,
 * which doubled its CPU per request on this VM (38 against 17 us with
 * the checks off).  Owner worker. */
static int64_t check_due(struct weft__worker *w, int64_t now, int *done)
{
	struct ep_state *be = state(w);

	while (be->clen) {
		struct check v = be->cq[be->chead];
		struct weft__fdslot *s = weft__io_fdslot(w, v.fd);
		/* Still the same wait, on a registration no system call
		 * has checked since? */
		bool live = s && s->seq == v.seq && (s->backend & SLOT_ARMED) && trusted(s, v.fd);
		int rc;

		if (live && v.due > now)
			return v.due - now;
		be->chead = (be->chead + 1) & (be->ccap - 1);
		be->clen--;
		if (live && (rc = refresh(be, v.fd, s, s->backend & SLOT_ARMED)) < 0)
			*done += fail_waiters(w, s, rc);
	}
	return -1;
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
	p->events = EV_ALWAYS | EPOLLOUT;
	return weft__io_send_try(op->fd, op->buf, op->len, op->flags);
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
	if (r >= 0)
		new_life(r);
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
		if (!(revents & EPOLLOUT))
			return -ENOTCONN;
		new_life(op->fd);
		return 0;
	}
	if (!revents && (r = nonblock(op->fd, -1)) < 0)
		return r;
	p->backend_state &= ~OP_CONN_AGAIN;
	if (connect(op->fd, op->addr, op->addrlen) == 0) {
		new_life(op->fd);
		return 0;
	}
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

/* What a try of op (result res) says about readiness that no edge will
 * report (persistent registrations; harmless bits otherwise).  A plain
 * recv that found nothing, or less than it asked for on a stream socket
 * (every persistent registration is one's), drained the input: whatever
 * comes next makes an edge.  Any other input op that got something may
 * have left some.  An output op that found no room clears its bit. */
static void saw(struct weft__fdslot *s, weft_op_t *op, ssize_t res)
{
	uint32_t ev = weft__op_priv(op)->events;

	if (ev & (EV_IN | EPOLLPRI)) {
		if (plain_recv(op) && !(op->flags & MSG_PEEK) &&
		    (res == NOT_READY || (res > 0 && (size_t)res < op->len)))
			s->backend &= ~SLOT_MAYIN;
		else if (res != NOT_READY)
			s->backend |= SLOT_MAYIN;
	}
	if ((ev & EPOLLOUT) && res == NOT_READY)
		s->backend &= ~SLOT_MAYOUT;
}

/* Make op wait on s for p->events; fresh: with a system call even where
 * the registration is trusted.  A wait that makes none is queued for its
 * check.  Returns 0, or a negative errno (op not waiting).  Owner worker. */
static int wait_on(struct weft__worker *w, weft_op_t *op, struct weft__fdslot *s, bool fresh)
{
	struct ep_state *be = state(w);
	struct weft__op *p = weft__op_priv(op);
	uint32_t want = (s->backend & SLOT_ARMED) | p->events;
	int rc = 0;

	if (fresh) {
		rc = refresh(be, op->fd, s, want);
	} else if (!trusted(s, op->fd)) {
		rc = arm(be, op->fd, s, want);
	} else {
		/* Quiet: the kernel's entry stays as it is (arm's first case). */
		set_armed(s, want);
		if ((rc = check_later(w, op->fd, s)) < 0)
			(void)arm(be, op->fd, s, interest(s));
	}
	if (rc == 0)
		p->backend_state |= OP_WAITING;
	return rc;
}

/* ---- the backend ---------------------------------------------------------------- */

/* Owner worker only, once, before any other call. */
static int ep_init(struct weft__worker *w, const weft_config_t *cfg)
{
	struct ep_state *be = calloc(1, sizeof(*be));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TAG };
	const char *env = getenv("WEFT_EPOLL_CHECK_MS");
	char *end;
	unsigned long ms;
	int rc;

	(void)cfg;
	if (!be)
		return -ENOMEM;
	be->check_ns = WEFT_EPOLL_CHECK_NS;
	if (env && *env && (ms = strtoul(env, &end, 10), !*end) && ms <= 86400000UL)
		be->check_ns = (int64_t)ms * 1000000;
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
	free(be->cq);
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
		weft__epoll_fd_closing(op->fd);
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
	if (s)
		s->backend &= ~SLOT_STRAY;
	if (s && plain_recv(op)) {
		bool et = trusted(s, op->fd), drained = et && !(s->backend & SLOT_MAYIN);
		if (drained || (!et && (s->backend & SLOT_RWAIT)) || behind(w)) {
			/* Wait without the recv that would most likely say
			 * EAGAIN: the socket was drained since its last edge, so
			 * the next data makes one (persistent: no system call
			 * at all); or request-response traffic, the reply not
			 * there yet (one-shot); or this worker is behind, and
			 * what arrived must queue behind what others sent
			 * before it (see Choices). */
			if (!et && (s->backend & SLOT_RWAIT))
				s->backend -= 1u << SLOT_RWAIT_SHIFT;
			p->events = EV_ALWAYS | EV_IN;
			if (wait_on(w, op, s, et && !drained) == 0)
				return 0;
			s->backend &= ~SLOT_RWAIT; /* cannot wait on it: try it */
		}
	}
	if ((p->flags & WEFT__OPF_TRIED) && !(s && trusted(s, op->fd) && (s->backend & SLOT_MAYOUT))) {
		res = NOT_READY; /* a SEND whose first try found no room */
		p->events = EV_ALWAYS | EPOLLOUT;
	} else {
		res = attempt_all(w, op, s, 0);
		if (s)
			saw(s, op, res);
	}
	if (s && plain_recv(op))
		s->backend = res == NOT_READY ? s->backend | SLOT_RWAIT : s->backend & ~SLOT_RWAIT;
	if (res == NOT_READY) {
		if (!s)
			res = -EBADF; /* not on a list: cannot happen for a valid fd */
		else if ((rc = wait_on(w, op, s, false)) == 0)
			return 0;
		else
			res = rc;
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
	bool et, took_in = false, took_out = false;
	int n = 0, rc;

	if (!s)
		return 0;
	et = trusted(s, fd);
	if (!et) {
		s->backend &= ~SLOT_ARMED; /* one-shot: the kernel disarmed it */
	} else if (!s->head) {
		/* Persistent, and no op here: its fiber moved to another
		 * worker, or the data came before the next recv.  The second
		 * such event with no op in between removes the entry, which
		 * would otherwise wake this worker for every edge.  No op
		 * here means nothing orders this call with a weft_close of fd
		 * on another thread, and the number may even name a new file
		 * by now.  That is harmless: the call then fails (EBADF), or
		 * names a file this set cannot hold (entries are added to it
		 * only under the lock held here) and fails with ENOENT.  So it
		 * goes through syscall(), past ThreadSanitizer's epoll_ctl
		 * interceptor, which would report the unordered close. */
		if (s->backend & SLOT_STRAY) {
			(void)syscall(SYS_epoll_ctl, state(w)->epfd, EPOLL_CTL_DEL, fd, NULL);
			s->backend &= ~(SLOT_ET | SLOT_REG | SLOT_STRAY | SLOT_ARMED);
			return 0;
		}
		s->backend |= SLOT_STRAY;
	}
	for (op = s->head; op; op = next) {
		struct weft__op *p = weft__op_priv(op);
		uint32_t method = p->backend_state & OP_METHOD;
		bool same = false;
		ssize_t res;

		next = p->fd_next;
		if (!(p->backend_state & OP_WAITING) || !(p->events & revents))
			continue;
		took_in |= (p->events & (EV_IN | EPOLLPRI)) != 0;
		took_out |= (p->events & EPOLLOUT) != 0;
		if (op->opcode != WEFT_OP_POLL && op->opcode != WEFT_OP_CONNECT &&
		    (op->len > 0 || op->opcode == WEFT_OP_ACCEPT || op->opcode == WEFT_OP_ACCEPT_MULTI)) {
			for (unsigned i = 0; i < nbusy; i++)
				same |= busy[i].opcode == op->opcode && busy[i].flags == op->flags &&
				        busy[i].method == method;
			if (same)
				continue;
		}
		res = attempt_all(w, op, s, revents);
		saw(s, op, res);
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
	if (et) {
		/* Readiness no waiter looked at: the next op must try. */
		if ((revents & (EV_IN | EPOLLPRI | EV_ALWAYS)) && !took_in)
			s->backend |= SLOT_MAYIN;
		if ((revents & (EPOLLOUT | EV_ALWAYS)) && !took_out)
			s->backend |= SLOT_MAYOUT;
	}
	if (et) /* persistent: nothing to re-arm (arm's first case) */
		set_armed(s, interest(s));
	else if ((rc = arm(state(w), fd, s, interest(s))) < 0)
		n += fail_waiters(w, s, rc);
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
static int ep_poll(struct weft__worker *w, int64_t timeout_ns, bool submit)
{
	struct ep_state *be = state(w);
	struct epoll_event mine[HELP_EVENTS], *ev = be->ev;
	int n, done = 0;

	(void)submit; /* nothing waits to be submitted: ops are issued at once */
	if (w->io->foreign) {
		ev = mine;
		n = wait_events(be, ev, HELP_EVENTS, 0);
	} else {
		if (be->clen) {
			/* Due checks first; sleep no longer than the next. */
			int64_t due = check_due(w, (int64_t)weft__now_ns(), &done);
			if (due >= 0 && (timeout_ns < 0 || timeout_ns > due))
				timeout_ns = due;
		}
		if (timeout_ns != 0) {
			weft__io_wait_begin(w->io);
			n = wait_events(be, ev, EP_EVENTS, timeout_ns);
			weft__io_wait_end(w->io);
		} else {
			n = wait_events(be, ev, EP_EVENTS, 0);
		}
	}
	if (n < 0)
		return done ? done : n == -EINTR ? 0 : n;
	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;
		if (tag != WAKE_TAG)
			done += on_event(w, (int)tag, ev[i].events);
		else if (!w->io->foreign)
			w->io->wake_seen = true;
	}
	return done;
}

/* Owner worker only.  Nothing is ever queued inside this backend. */
static int ep_busy(struct weft__worker *w, bool submit)
{
	(void)w;
	(void)submit;
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
};
