/*
 * io_api.c: the public face of the event layer.  weft_op_submit, weft_op_run
 * and weft_op_cancel on top of io.c; the blocking-style calls (weft_read,
 * weft_recv, weft_sleep, ...); and what they all do off the workers, where
 * there is no event loop to wait in: the plain system call.
 *
 * How a call waits, by where it is made (weft.h explains the choice):
 *   in a fiber        the fiber parks (fiber.c) and the worker moves on;
 *   in a plain task   the worker helps (weft__help_until), polling its own
 *                     event state, until the op's flag is set;
 *   off the workers   the system call blocks the thread (poll() bounds it
 *                     when the op has a timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "worker.h"

/* The opcodes weft_op_run performs; weft_op_submit also takes ACCEPT_MULTI. */
static bool valid_opcode(int opcode)
{
	return opcode >= WEFT_OP_READ && opcode <= WEFT_OP_SLEEP;
}

static bool valid_submit(const weft_op_t *op)
{
	if (op->opcode == WEFT_OP_ACCEPT_MULTI)
		return op->addr == NULL;
	return valid_opcode(op->opcode);
}

/* ---- off the workers --------------------------------------------------------- */

static short wait_events(const weft_op_t *op)
{
	switch (op->opcode) {
	case WEFT_OP_READ:
	case WEFT_OP_RECV:
	case WEFT_OP_ACCEPT:
		return POLLIN;
	case WEFT_OP_POLL:
		return (short)op->flags;
	default:
		return POLLOUT;
	}
}

/* Milliseconds left until deadline (rounded up), -1 without one. */
static int ms_left(uint64_t deadline)
{
	uint64_t now;

	if (!deadline)
		return -1;
	now = weft__now_ns();
	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000 > 0x7fffffff ? 0x7fffffff : (deadline - now + 999999) / 1000000);
}

static ssize_t syscall_once(weft_op_t *op)
{
	switch (op->opcode) {
	case WEFT_OP_READ:
		return op->off < 0 ? read(op->fd, op->buf, op->len) : pread(op->fd, op->buf, op->len, (off_t)op->off);
	case WEFT_OP_WRITE:
		return op->off < 0 ? write(op->fd, op->buf, op->len) : pwrite(op->fd, op->buf, op->len, (off_t)op->off);
	case WEFT_OP_RECV:
		return recv(op->fd, op->buf, op->len, op->flags);
	case WEFT_OP_SEND:
		return send(op->fd, op->buf, op->len, op->flags | MSG_NOSIGNAL);
	case WEFT_OP_ACCEPT:
		return accept4(op->fd, op->addr, op->addr ? &op->addrlen : NULL, op->flags);
	case WEFT_OP_CONNECT:
		return connect(op->fd, op->addr, op->addrlen);
	default:
		return -1;
	}
}

static ssize_t blocking(weft_op_t *op)
{
	uint64_t deadline = op->timeout_ns ? weft__now_ns() + op->timeout_ns : 0;
	ssize_t r;

	if (op->opcode == WEFT_OP_SLEEP) {
		struct timespec ts = { (time_t)(deadline / 1000000000ULL), (long)(deadline % 1000000000ULL) };
		if (!deadline)
			return 0;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return 0;
	}
	if (op->fd < 0)
		return -EBADF;
	if (op->opcode == WEFT_OP_CLOSE)
		return close(op->fd) == 0 || errno == EINTR ? 0 : -errno;
	for (;;) {
		/* With a deadline (or for POLL), wait for readiness first;
		 * CONNECT has nothing to wait for before it starts. */
		if ((deadline && op->opcode != WEFT_OP_CONNECT) || op->opcode == WEFT_OP_POLL) {
			struct pollfd pfd = { op->fd, wait_events(op), 0 };
			int n = poll(&pfd, 1, ms_left(deadline));
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (n == 0)
				return -ETIMEDOUT;
			if (op->opcode == WEFT_OP_POLL)
				return pfd.revents;
		}
		r = syscall_once(op);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/* A non-blocking fd: wait for it, then try again. */
			struct pollfd pfd = { op->fd, wait_events(op), 0 };
			if (poll(&pfd, 1, ms_left(deadline)) == 0)
				return -ETIMEDOUT;
			continue;
		}
		return -errno;
	}
}

/* ---- the general form ---------------------------------------------------------- */

static bool flag_set(void *flag)
{
	return atom_load_acq_32(flag) != 0;
}

/* errno, read and written out of line: a call that suspended may return on
 * another thread, and the compiler may keep &errno (a const function's
 * result) in a register across the switch. */
static __attribute__((noinline)) int errno_get(void)
{
	__asm__ volatile("" ::: "memory");
	return errno;
}

static __attribute__((noinline)) void errno_set(int e)
{
	__asm__ volatile("" ::: "memory");
	errno = e;
}

/* tried: weft_send's fast path made the SEND's first try (io.h). */
static ssize_t op_run(weft_op_t *op, bool tried)
{
	struct weft__worker *w;
	struct weft__fiber *f;

	if (!valid_opcode(op->opcode))
		return op->result = -EINVAL;
	w = weft__self_fresh();
	if (!w || !w->io)
		return op->result = blocking(op);
	f = w->fiber;
	if (f && !weft__tdq_pinned(&w->tdq)) {
		weft__fiber_prepare(f);
		if (!weft__io_start(w, op, f, NULL, tried))
			weft__fiber_park(f); /* resumes when op completed */
	} else {
		uint32_t done = 0;
		if (!weft__io_start(w, op, NULL, &done, tried))
			weft__help_until(w, flag_set, &done, true);
	}
	atom_store_32(&weft__op_priv(op)->state, WEFT__OP_IDLE);
	return op->result;
}

static ssize_t op_run_keep_errno(weft_op_t *op, bool tried)
{
	int saved = errno_get();
	ssize_t r = op_run(op, tried);

	errno_set(saved); /* results carry the error; errno is the caller's */
	return r;
}

ssize_t weft_op_run(weft_op_t *op)
{
	if (!op)
		return -EINVAL;
	return op_run_keep_errno(op, false);
}

/* An outside weft_op_submit: started by a task on a worker, which counts it
 * in outstanding while its own submission still does (future.c, I2). */
static void submit_task(void *arg)
{
	weft_op_t *op = arg;
	struct weft__worker *w = weft__self_fresh();

	atom_faa_64(&w->rt->outstanding, 1);
	if (weft__io_start(w, op, NULL, NULL, false))
		weft__io_continue(w, op);
}

int weft_op_submit(weft_runtime_t *rt, weft_op_t *op)
{
	struct weft__worker *w = weft__self_fresh();
	int saved, rc;

	if (!rt || !op || !op->cb || !valid_submit(op))
		return -EINVAL;
	if (w && w->rt == rt && w->io) {
		saved = errno_get();
		/* The running task keeps outstanding above 0. */
		atom_faa_64(&rt->outstanding, 1);
		if (weft__io_start(w, op, NULL, NULL, false))
			weft__io_continue(w, op); /* cb runs as a task, not here */
		errno_set(saved);
		return 0;
	}
	/* Cancellable from now on (io.c, I8). */
	atom_store_32(&weft__op_priv(op)->hold, 0);
	atom_store_32(&weft__op_priv(op)->state, WEFT__OP_QUEUED);
	rc = weft_submit(rt, submit_task, op, NULL);
	if (rc)
		atom_store_32(&weft__op_priv(op)->state, WEFT__OP_IDLE);
	return rc;
}

int weft_op_cancel(weft_op_t *op)
{
	struct weft__op *p;
	uint32_t s;

	if (!op)
		return -EINVAL;
	p = weft__op_priv(op);
	for (;;) {
		s = atom_load_32(&p->state);
		if (s == WEFT__OP_QUEUED_CANCEL)
			return 0; /* asked already; it ends -ECANCELED */
		if (s != WEFT__OP_QUEUED)
			break;
		if (atom_cas_32(&p->state, WEFT__OP_QUEUED, WEFT__OP_QUEUED_CANCEL))
			return 0; /* io.c I8 */
	}
	if (s != WEFT__OP_PENDING)
		return -EALREADY;
	if (weft__self_fresh() == p->owner) {
		weft__io_cancel_local(p->owner, op, -ECANCELED);
		return 0;
	}
	return weft__io_cancel_remote(op);
}

/* ---- the blocking-style calls --------------------------------------------------- */

/* A fresh op for the calls below, set field by field: `= { 0 }` zeroed all
 * 176 bytes with `rep stos`, which is slow for so few bytes on the machine
 * this was measured on (as for fiber records, fiber.c).  Of the runtime's
 * part only state and hold need a value: weft__io_start sets the rest
 * before it reads any of it, and the blocking path reads none. */
static void op_init(weft_op_t *op, int opcode, int fd)
{
	op->opcode = opcode;
	op->fd = fd;
	op->buf = NULL;
	op->len = 0;
	op->off = 0;
	op->flags = 0;
	op->addr = NULL;
	op->addrlen = 0;
	op->timeout_ns = 0;
	op->cb = NULL;
	op->data = NULL;
	op->result = 0;
	weft__op_priv(op)->state = WEFT__OP_IDLE;
	weft__op_priv(op)->hold = 0;
}

static ssize_t run_simple(int opcode, int fd, void *buf, size_t len, int64_t off, int flags, bool tried)
{
	weft_op_t op;

	op_init(&op, opcode, fd);
	op.buf = buf;
	op.len = len;
	op.off = off;
	op.flags = flags;
	return op_run_keep_errno(&op, tried);
}

ssize_t weft_read(int fd, void *buf, size_t len, off_t off)
{
	return run_simple(WEFT_OP_READ, fd, buf, len, off < 0 ? -1 : off, 0, false);
}

ssize_t weft_write(int fd, const void *buf, size_t len, off_t off)
{
	return run_simple(WEFT_OP_WRITE, fd, (void *)(uintptr_t)buf, len, off < 0 ? -1 : off, 0, false);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
	return run_simple(WEFT_OP_RECV, fd, buf, len, 0, flags, false);
}

/* A send nearly always fits the socket's buffer: on a worker it is tried
 * before any op exists (io.h, weft__io_send_first), which spares the op's
 * setup and the errno dance around a suspension; only one that found no
 * room becomes an op, not tried twice.  Echo on one worker with 1 000
 * connections, callgrind: 1332 -> 1208 user instructions per message on
 * io_uring, 1616 -> 1488 on epoll. */
ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	struct weft__worker *w = weft__self_fresh();
	bool tried = w && w->io;

	if (tried) {
		ssize_t r = weft__io_send_first(w, fd, buf, len, flags);
		if (r != -EAGAIN)
			return r;
	}
	return run_simple(WEFT_OP_SEND, fd, (void *)(uintptr_t)buf, len, 0, flags, tried);
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	weft_op_t op;
	ssize_t r;

	op_init(&op, WEFT_OP_ACCEPT, fd);
	op.flags = flags;
	if (addr && addrlen) {
		op.addr = addr;
		op.addrlen = *addrlen;
	}
	r = weft_op_run(&op);
	if (r >= 0 && addr && addrlen)
		*addrlen = op.addrlen;
	return (int)r;
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	weft_op_t op;

	if (!addr)
		return -EFAULT;
	op_init(&op, WEFT_OP_CONNECT, fd);
	op.addr = (struct sockaddr *)(uintptr_t)addr;
	op.addrlen = addrlen;
	return (int)weft_op_run(&op);
}

int weft_sleep(uint64_t ns)
{
	weft_op_t op;

	op_init(&op, WEFT_OP_SLEEP, -1);
	op.timeout_ns = ns;
	return (int)weft_op_run(&op);
}

static bool acks_done(void *acks)
{
	return atom_load_32(acks) == 0;
}

int weft_close(int fd)
{
	struct weft__worker *w = weft__self_fresh();
	int saved, rc;

	if (fd < 0)
		return -EBADF;
	if (w && w->io) {
		/* Wake the ops that wait on fd before the number can be
		 * reused: other workers acknowledge their cancellations. */
		uint32_t acks = 0;
		(void)weft__io_cancel_fd(w->rt, fd, &acks);
		if (w->fiber && !weft__tdq_pinned(&w->tdq)) {
			while (atom_load_32(&acks))
				weft_yield();
		} else if (atom_load_32(&acks)) {
			weft__help_until(w, acks_done, &acks, false);
		}
	}
	weft__epoll_fd_closing(fd);
	saved = errno_get();
	rc = close(fd) == 0 || errno == EINTR ? 0 : -errno;
	errno_set(saved);
	return rc;
}

/* Repeat op (a WRITE or SEND, or a READ) over short transfers. */
static ssize_t repeat(int opcode, int fd, char *buf, size_t len, int64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = opcode == WEFT_OP_SEND ? weft_send(fd, buf + done, len - done, 0)
		                                   : run_simple(opcode, fd, buf + done, len - done,
		                                                off < 0 ? -1 : off + (int64_t)done, 0, false);
		if (r == -ENOTSOCK && opcode == WEFT_OP_SEND) {
			opcode = WEFT_OP_WRITE; /* not a socket: plain writes */
			continue;
		}
		if (r < 0)
			return r;
		if (r == 0)
			break; /* end of file; a write of 0 would never progress */
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, off_t off)
{
	if (!buf && len)
		return -EFAULT;
	/* A socket through send (MSG_NOSIGNAL: a closed peer is -EPIPE, not a
	 * signal); anything else falls back to write on the first try. */
	return repeat(off < 0 ? WEFT_OP_SEND : WEFT_OP_WRITE, fd, (char *)(uintptr_t)buf, len, off < 0 ? -1 : off);
}

ssize_t weft_read_full(int fd, void *buf, size_t len, off_t off)
{
	if (!buf && len)
		return -EFAULT;
	return repeat(WEFT_OP_READ, fd, buf, len, off < 0 ? -1 : off);
}
