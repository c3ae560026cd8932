/*
 * test_io_errors.c: failures.  A peer that closes or resets mid-transfer,
 * EMFILE under a low RLIMIT_NOFILE (and the runtime working afterwards),
 * refused connections, bad arguments (NULL op, unknown opcode, NULL
 * function, negative and huge fds), the backend choice: WEFT_IO and the
 * automatic fallback to epoll when io_uring setup fails
 * (WEFT_IO_INJECT_FAIL=1).  Both backends where a backend is involved.
 */
#define _GNU_SOURCE
#include "test_io_util.h"

#include <limits.h>

/* ------------------------------------------------------------------ */
/* Peer closes mid-transfer                                             */

struct pc {
	int fd_r, fd_w;
	size_t sent_target;
	uint64_t got;
	ssize_t last;
	size_t bad_at;
	atomic_int waiting;
	int tcp;
};

static void pc_reader(void *p)
{
	struct pc *c = p;
	unsigned char buf[5000];
	for (;;) {
		/* Announce each wait: after the last byte, the writer closes
		 * while we are suspended in this recv. */
		if (c->got == c->sent_target)
			atomic_store(&c->waiting, 1);
		ssize_t r = weft_recv(c->fd_r, buf, sizeof buf, 0);
		c->last = r;
		if (r <= 0)
			break;
		size_t bad = io_mismatch(buf, (size_t)r, 3, c->got);
		if (bad != (size_t)r && c->bad_at == SIZE_MAX)
			c->bad_at = c->got + bad;
		c->got += (uint64_t)r;
	}
}

static void pc_writer(void *p)
{
	struct pc *c = p;
	unsigned char *buf = malloc(c->sent_target);
	if (!buf) {
		t_fail_at(__FILE__, __LINE__, "malloc");
		return;
	}
	io_fill(buf, c->sent_target, 3, 0);
	T_CHECK_EQ(weft_write_all(c->fd_w, buf, c->sent_target, -1), (ssize_t)c->sent_target);
	free(buf);
	/* One worker: once the reader says it waits, it is suspended. */
	T_CHECK(io_yield_until(&c->waiting, 10000000));
	T_CHECK_EQ(close(c->fd_w), 0);
}

IO_TEST(errors, peer_closes_mid_transfer)
{
	for (int tcp = 0; tcp < 2; tcp++) {
		weft_runtime_t *rt = io_rt(backend, 1);
		struct pc c;
		memset(&c, 0, sizeof c);
		int a, b;
		if (tcp) {
			io_tcp_pair(&a, &b);
		} else {
			int sv[2];
			io_socketpair(sv);
			a = sv[0];
			b = sv[1];
		}
		c.fd_r = a;
		c.fd_w = b;
		c.sent_target = t_size(1u << 20, 128u << 10) + 77;
		c.last = 1;
		c.bad_at = SIZE_MAX;
		struct io_wg wg;
		io_wg_init(&wg);
		IO_GO_WG(rt, &wg, pc_reader, &c);
		IO_GO_WG(rt, &wg, pc_writer, &c);
		io_finish(rt, &wg);
		T_ASSERT_CLEAN();
		cr_assert_eq(c.got, c.sent_target, "%s: got %llu of %zu", tcp ? "tcp" : "unix",
		             (unsigned long long)c.got, c.sent_target);
		cr_assert_eq(c.bad_at, SIZE_MAX, "byte %zu differs", c.bad_at);
		cr_assert_eq(c.last, 0, "%s: recv after the peer closed = %zd (want 0)", tcp ? "tcp" : "unix", c.last);
		close(a);
	}
}

/* ------------------------------------------------------------------ */
/* Peer resets (SO_LINGER 0) mid-transfer                               */

struct rst {
	int srv, cli;
	size_t first;
	ssize_t first_rc;
	ssize_t recv_rc;
	ssize_t send_rc;
	ssize_t write_all_rc;
	atomic_int waiting;
};

static void rst_reader(void *p)
{
	struct rst *r = p;
	unsigned char *buf = malloc(r->first);
	if (!buf)
		return;
	/* The first part of the transfer arrives intact. */
	r->first_rc = weft_read_full(r->srv, buf, r->first, -1);
	T_CHECK_EQ(io_mismatch(buf, r->first, 5, 0), r->first);
	free(buf);
	char b[64];
	atomic_store(&r->waiting, 1);
	r->recv_rc = weft_recv(r->srv, b, sizeof b, 0); /* peer resets now */
	/* Sending to a reset peer: an error, and no SIGPIPE. */
	static char junk[1 << 16];
	ssize_t s = 0;
	for (int i = 0; i < 64 && s >= 0; i++)
		s = weft_send(r->srv, junk, sizeof junk, 0);
	r->send_rc = s;
	r->write_all_rc = weft_write_all(r->srv, junk, sizeof junk, -1);
}

static void rst_peer(void *p)
{
	struct rst *r = p;
	unsigned char *buf = malloc(r->first);
	if (!buf)
		return;
	io_fill(buf, r->first, 5, 0);
	T_CHECK_EQ(weft_write_all(r->cli, buf, r->first, -1), (ssize_t)r->first);
	free(buf);
	T_CHECK(io_yield_until(&r->waiting, 10000000));
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	T_CHECK_EQ(setsockopt(r->cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	T_CHECK_EQ(close(r->cli), 0); /* RST */
}

IO_TEST(errors, peer_resets_mid_transfer)
{
	/* Default SIGPIPE disposition: a send without MSG_NOSIGNAL kills us. */
	signal(SIGPIPE, SIG_DFL);
	weft_runtime_t *rt = io_rt(backend, 1);
	struct rst r;
	memset(&r, 0, sizeof r);
	io_tcp_pair(&r.cli, &r.srv);
	r.first = t_size(256u << 10, 64u << 10);
	r.first_rc = r.recv_rc = r.send_rc = r.write_all_rc = 1;
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, rst_reader, &r);
	IO_GO_WG(rt, &wg, rst_peer, &r);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(r.first_rc, (ssize_t)r.first);
	cr_assert_eq(r.recv_rc, -ECONNRESET, "recv when the peer resets = %zd", r.recv_rc);
	cr_assert(r.send_rc == -EPIPE || r.send_rc == -ECONNRESET, "send to a reset peer = %zd", r.send_rc);
	cr_assert(r.write_all_rc == -EPIPE || r.write_all_rc == -ECONNRESET, "weft_write_all to a reset peer = %zd",
	          r.write_all_rc);
	close(r.srv);
}

/* ------------------------------------------------------------------ */
/* EMFILE                                                               */

struct emf {
	int lfd;
	struct sockaddr_in addr;
	int accept_rc;
	int socket_errno;
	int after_accept_fd;
	ssize_t after_echo;
	int sleep_rc;
	struct t_latch *latch;
	weft_op_t multi; /* an ACCEPT_MULTI submitted at the limit */
	ssize_t multi_rc;
	int multi_calls;
	struct t_latch multi_end;
};

/* Its callbacks never overlap (weft.h), so plain fields do. */
static void emf_multi_cb(weft_op_t *op)
{
	struct emf *e = op->data;
	e->multi_calls++;
	e->multi_rc = op->result;
	if (op->result >= 0)
		close((int)op->result);
	else
		t_latch_done(&e->multi_end);
}

static void emf_low(void *p)
{
	struct emf *e = p;
	/* A connection is queued, but there is no fd to give it. */
	e->accept_rc = weft_accept(e->lfd, NULL, NULL, SOCK_CLOEXEC);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	e->socket_errno = s < 0 ? errno : 0;
	if (s >= 0)
		close(s);
	t_latch_done(e->latch);
}

static void emf_after(void *p)
{
	struct emf *e = p;
	/* Limit restored: the same queued connection is accepted now. */
	e->after_accept_fd = weft_accept(e->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (e->after_accept_fd >= 0) {
		char b[4];
		e->after_echo = weft_recv(e->after_accept_fd, b, sizeof b, 0);
		T_CHECK_EQ(memcmp(b, "hey", 3), 0);
		T_CHECK_EQ(weft_close(e->after_accept_fd), 0);
	}
	e->sleep_rc = weft_sleep(1000000);
	t_latch_done(e->latch);
}

IO_TEST(errors, emfile_then_recovers)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct emf e;
	memset(&e, 0, sizeof e);
	e.accept_rc = e.after_accept_fd = 1;
	e.after_echo = 1;
	e.sleep_rc = 1;
	e.lfd = io_listener(&e.addr);
	int cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(cli, 0);
	cr_assert_eq(connect(cli, (struct sockaddr *)&e.addr, sizeof e.addr), 0);
	cr_assert_eq(send(cli, "hey", 3, 0), 3);

	struct rlimit old;
	static struct t_fd_fill fill;
	/* The limit just above the highest fd in use, every slot below it
	 * taken. */
	int lim_rc = t_fd_limit_low(&old, 0);
	cr_assert_eq(lim_rc, 0, "setrlimit: %s", strerror(lim_rc));
	t_fd_fill(&fill, 0);

	struct t_latch l;
	t_latch_init(&l, 1);
	e.latch = &l;
	int go_rc = weft_go(rt, emf_low, &e);
	if (go_rc == 0)
		t_latch_wait(&l);
	t_latch_fini(&l);
	/* A multishot accept ends with the error, leaving the connection. */
	e.multi.opcode = WEFT_OP_ACCEPT_MULTI;
	e.multi.fd = e.lfd;
	e.multi.flags = SOCK_CLOEXEC;
	e.multi.cb = emf_multi_cb;
	e.multi.data = &e;
	t_latch_init(&e.multi_end, 1);
	int multi_submit = weft_op_submit(rt, &e.multi);
	if (multi_submit == 0)
		t_latch_wait(&e.multi_end);
	t_latch_fini(&e.multi_end);

	/* Restore before any assertion. */
	t_fd_unfill(&fill);
	int restore = setrlimit(RLIMIT_NOFILE, &old);
	cr_assert_eq(restore, 0);
	cr_assert_eq(fill.err, EMFILE);
	cr_assert_eq(go_rc, 0, "weft_go with no fds left = %d (fibers need no fd)", go_rc);
	cr_assert_eq(e.accept_rc, -EMFILE, "weft_accept at RLIMIT_NOFILE = %d", e.accept_rc);
	cr_assert_eq(e.socket_errno, EMFILE);
	cr_assert_eq(multi_submit, 0, "weft_op_submit(ACCEPT_MULTI) at the limit = %d", multi_submit);
	cr_assert_eq(e.multi_rc, -EMFILE, "ACCEPT_MULTI at RLIMIT_NOFILE ended with %zd", e.multi_rc);
	cr_assert_eq(e.multi_calls, 1, "ACCEPT_MULTI callbacks at the limit: %d", e.multi_calls);

	/* The runtime keeps working. */
	t_latch_init(&l, 1);
	IO_GO(rt, emf_after, &e);
	t_latch_wait(&l);
	t_latch_fini(&l);
	T_ASSERT_CLEAN();
	cr_assert_geq(e.after_accept_fd, 0, "weft_accept after restoring the limit = %d", e.after_accept_fd);
	cr_assert_eq(e.after_echo, 3);
	cr_assert_eq(e.sleep_rc, 0);
	t_destroy(rt);
	close(cli);
	close(e.lfd);
}

/* ------------------------------------------------------------------ */
/* Refused connection, wrong kinds of fd                                */

struct misc {
	int refused_port;
	int connect_rc;
	int file_fd;
	ssize_t recv_file;
	int sv[2];
	ssize_t read_dir;
	int dir_fd;
	int errno_after_recv, errno_after_read;
};

static void misc_fiber(void *p)
{
	struct misc *m = p;
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = (in_port_t)m->refused_port;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	m->connect_rc = weft_connect(fd, (struct sockaddr *)&a, sizeof a);
	close(fd);
	char b[8];
	/* Results, not errno: errno is left alone (one worker, so this
	 * fiber's errno is that thread's before and after). */
	errno = EDOM;
	m->recv_file = weft_recv(m->file_fd, b, sizeof b, 0);
	m->errno_after_recv = errno;
	errno = EDOM;
	m->read_dir = weft_read(m->dir_fd, b, sizeof b, -1);
	m->errno_after_read = errno;
}

IO_TEST(errors, refused_and_wrong_fds)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct misc m;
	memset(&m, 0, sizeof m);
	struct sockaddr_in a;
	int l = io_listener(&a);
	m.refused_port = a.sin_port; /* network order */
	close(l); /* nobody listens there now */
	m.file_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	m.dir_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(m.file_fd, 0);
	cr_assert_geq(m.dir_fd, 0);
	m.connect_rc = 1;
	m.recv_file = m.read_dir = 1;
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, misc_fiber, &m);
	io_finish(rt, &wg);
	cr_assert_eq(m.connect_rc, -ECONNREFUSED, "connect to a closed loopback port = %d", m.connect_rc);
	cr_assert_eq(m.recv_file, -ENOTSOCK, "recv on /dev/null = %zd", m.recv_file);
	cr_assert_eq(m.read_dir, -EISDIR, "read of a directory = %zd", m.read_dir);
	cr_assert_eq(m.errno_after_recv, EDOM, "errno after a failed weft_recv in a fiber: %d (%s)", m.errno_after_recv,
	             strerror(m.errno_after_recv));
	cr_assert_eq(m.errno_after_read, EDOM, "errno after a failed weft_read in a fiber: %d (%s)", m.errno_after_read,
	             strerror(m.errno_after_read));
	close(m.file_fd);
	close(m.dir_fd);
}

/* ------------------------------------------------------------------ */
/* Bad arguments: a negative errno, never a crash                       */

static void bad_cb(weft_op_t *op) { (void)op; }
static void bad_fn(void *p) { (void)p; }

struct bad {
	ssize_t r[32];
	int n;
};

/* The same calls in every context: fiber, task, off the workers. */
static void bad_calls(struct bad *b)
{
	char buf[8];
	int k = 0;
	b->r[k++] = weft_op_run(NULL);
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = 0;
	b->r[k++] = weft_op_run(&op);
	memset(&op, 0, sizeof op);
	op.opcode = 999;
	op.fd = 0;
	b->r[k++] = weft_op_run(&op);
	b->r[k++] = op.result; /* also stored */
	b->r[k++] = weft_recv(-1, buf, sizeof buf, 0);
	b->r[k++] = weft_send(-7, buf, sizeof buf, 0);
	b->r[k++] = weft_read(-1, buf, sizeof buf, -1);
	b->r[k++] = weft_write(-1, buf, sizeof buf, 0);
	b->r[k++] = weft_accept(-1, NULL, NULL, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	b->r[k++] = weft_connect(-1, (struct sockaddr *)&a, sizeof a);
	b->r[k++] = weft_close(-1);
	b->r[k++] = weft_recv(INT_MAX, buf, sizeof buf, 0);  /* far beyond any table */
	b->r[k++] = weft_close(INT_MAX);
	b->r[k++] = weft_write_all(-1, buf, sizeof buf, -1);
	b->r[k++] = weft_read_full(-1, buf, sizeof buf, -1);
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = -3;
	op.flags = POLLIN;
	op.timeout_ns = 2000000000ULL; /* a hang would show as -ETIMEDOUT */
	b->r[k++] = weft_op_run(&op);
	b->r[k++] = weft_op_cancel(NULL);
	b->r[k++] = weft_go(NULL, bad_fn, NULL);
	b->r[k++] = weft_go(weft_runtime_current(), NULL, NULL); /* NULL rt off workers: -EINVAL too */
	b->n = k;
}

static const ssize_t bad_want[] = {
	-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF,
	-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, 0 /* poll: see below */, -EINVAL, -EINVAL, -EINVAL,
};
static const char *const bad_what[] = {
	"weft_op_run(NULL)", "opcode 0", "opcode 999", "opcode 999: op.result", "weft_recv(-1)",
	"weft_send(-7)", "weft_read(-1)", "weft_write(-1)", "weft_accept(-1)", "weft_connect(-1)",
	"weft_close(-1)", "weft_recv(INT_MAX)", "weft_close(INT_MAX)", "weft_write_all(-1)",
	"weft_read_full(-1)", "POLL on fd -3", "weft_op_cancel(NULL)", "weft_go(NULL rt)", "weft_go(NULL fn)",
};

static void bad_check(struct bad *b, const char *ctx)
{
	cr_assert_eq(b->n, (int)(sizeof bad_want / sizeof bad_want[0]));
	for (int i = 0; i < b->n; i++) {
		if (i == 15) {
			/* poll(2) itself ignores a negative fd (it would
			 * wait forever); the runtime must refuse it. */
			cr_assert(b->r[i] == -EBADF || b->r[i] == -EINVAL, "%s: %s = %zd", ctx, bad_what[i], b->r[i]);
			continue;
		}
		cr_assert_eq(b->r[i], bad_want[i], "%s: %s = %zd, want %zd", ctx, bad_what[i], b->r[i], bad_want[i]);
	}
}

static void bad_task(void *p) { bad_calls(p); }

struct bad_fiber_ctx {
	struct bad b;
	struct t_latch latch;
};

static void bad_fiber(void *p)
{
	struct bad_fiber_ctx *c = p;
	bad_calls(&c->b);
	t_latch_done(&c->latch);
}

IO_TEST(errors, bad_arguments)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct bad_fiber_ctx fc;
	memset(&fc, 0, sizeof fc);
	t_latch_init(&fc.latch, 1);
	IO_GO(rt, bad_fiber, &fc);
	t_latch_wait(&fc.latch);
	bad_check(&fc.b, "fiber");

	struct bad tb;
	memset(&tb, 0, sizeof tb);
	t_run(rt, bad_task, &tb);
	bad_check(&tb, "task");

	struct bad ob;
	memset(&ob, 0, sizeof ob);
	bad_calls(&ob);
	bad_check(&ob, "off the workers");

	/* weft_op_submit */
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_SLEEP;
	op.cb = bad_cb;
	cr_assert_eq(weft_op_submit(NULL, &op), -EINVAL);
	cr_assert_eq(weft_op_submit(rt, NULL), -EINVAL);
	op.cb = NULL;
	cr_assert_eq(weft_op_submit(rt, &op), -EINVAL, "submit without a callback");
	op.cb = bad_cb;
	op.opcode = 0;
	cr_assert_eq(weft_op_submit(rt, &op), -EINVAL, "submit opcode 0");
	op.opcode = WEFT_OP_SLEEP + 100;
	cr_assert_eq(weft_op_submit(rt, &op), -EINVAL, "submit unknown opcode");
	op.opcode = -1;
	cr_assert_eq(weft_op_submit(rt, &op), -EINVAL, "submit opcode -1");
	cr_assert_eq(weft_go(NULL, bad_fn, NULL), -EINVAL);
	cr_assert_eq(weft_go(rt, NULL, NULL), -EINVAL);
	cr_assert_eq(weft_runtime_io_backend(NULL), -EINVAL);
	/* A never-started op cannot be cancelled. */
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_RECV;
	cr_assert_eq(weft_op_cancel(&op), -EALREADY);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	t_latch_fini(&fc.latch);
}

/* A callback op on a bad fd: submit accepts it, the callback gets -EBADF. */
struct badcb {
	weft_op_t op;
	ssize_t res;
	atomic_int calls;
	struct t_latch latch;
};

static void badcb_fn(weft_op_t *op)
{
	struct badcb *b = op->data;
	b->res = op->result;
	atomic_fetch_add(&b->calls, 1);
	t_latch_done(&b->latch);
}

IO_TEST(errors, bad_fd_callback)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int fds[] = {-1, INT_MAX};
	for (int i = 0; i < 2; i++) {
		struct badcb b;
		memset(&b, 0, sizeof b);
		t_latch_init(&b.latch, 1);
		char buf[4];
		b.op.opcode = WEFT_OP_RECV;
		b.op.fd = fds[i];
		b.op.buf = buf;
		b.op.len = sizeof buf;
		b.op.cb = badcb_fn;
		b.op.data = &b;
		int rc = weft_op_submit(rt, &b.op);
		cr_assert_eq(rc, 0, "weft_op_submit(RECV on fd %d) = %d", fds[i], rc);
		t_latch_wait(&b.latch);
		cr_assert_eq(atomic_load(&b.calls), 1);
		cr_assert_eq(b.res, -EBADF, "callback result on fd %d = %zd", fds[i], b.res);
		t_latch_fini(&b.latch);
	}
	t_destroy(rt);
}

/* Out-of-range configuration. */
Test(errors, bad_config, .timeout = IO_TIMEOUT)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.io = 7;
	weft_runtime_t *rt = NULL;
	int rc = weft_runtime_create(&rt, &cfg);
	cr_assert_eq(rc, -EINVAL, "cfg.io = 7: %d", rc);
	cfg.io = -1;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), -EINVAL, "cfg.io = -1");
	/* An absurd fiber stack: refused at create or at weft_go, no crash. */
	cfg.io = WEFT_IO_EPOLL;
	cfg.fiber_stack_size = SIZE_MAX / 2;
	rt = NULL;
	rc = weft_runtime_create(&rt, &cfg);
	if (rc == 0) {
		int g = weft_go(rt, bad_fn, NULL);
		cr_assert(g == -ENOMEM || g == -EINVAL, "weft_go with a %zu-byte stack = %d", cfg.fiber_stack_size, g);
		t_destroy(rt);
	} else {
		cr_assert(rc == -EINVAL || rc == -ENOMEM, "create with fiber_stack_size SIZE_MAX/2 = %d", rc);
	}
}

/* ------------------------------------------------------------------ */
/* Backend selection                                                    */

static void echo_once_fiber(void *p)
{
	int *sv = p;
	T_CHECK_EQ(weft_send(sv[1], "x", 1, 0), 1);
	char b;
	T_CHECK_EQ(weft_recv(sv[0], &b, 1, 0), 1);
	T_CHECK_EQ(weft_sleep(1000000), 0);
}

static void check_runtime_works(weft_runtime_t *rt)
{
	int sv[2];
	io_socketpair(sv);
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, echo_once_fiber, sv);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	close(sv[0]);
	close(sv[1]);
}

Test(errors, inject_fail_auto_falls_back, .timeout = IO_TIMEOUT)
{
	setenv("WEFT_IO_INJECT_FAIL", "1", 1);
	unsetenv("WEFT_IO");
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.io = WEFT_IO_AUTO;
	weft_runtime_t *rt = NULL;
	int rc = weft_runtime_create(&rt, &cfg);
	cr_assert_eq(rc, 0, "AUTO with io_uring failing: create = %d (%s)", rc, weft_strerror(rc));
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	const char *note = weft_runtime_io_note(rt);
	cr_assert_not_null(note, "no note explains the fallback");
	cr_assert_gt(strlen(note), 0);
	cr_log_info("fallback note: %s", note);
	check_runtime_works(rt);

	/* NULL cfg (defaults: auto) falls back as well. */
	rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, NULL), 0);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	cr_assert_not_null(weft_runtime_io_note(rt));
	check_runtime_works(rt);
}

Test(errors, inject_fail_uring_demanded_fails, .timeout = IO_TIMEOUT)
{
	setenv("WEFT_IO_INJECT_FAIL", "1", 1);
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 2;
	cfg.io = WEFT_IO_URING;
	weft_runtime_t *rt = NULL;
	int rc = weft_runtime_create(&rt, &cfg);
	cr_assert_lt(rc, 0, "io_uring demanded but failing: create = %d", rc);
	rt = NULL;
	/* Explicit epoll is unaffected. */
	cfg.io = WEFT_IO_EPOLL;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	check_runtime_works(rt);
}

Test(errors, auto_prefers_uring, .timeout = IO_TIMEOUT)
{
	unsetenv("WEFT_IO_INJECT_FAIL");
	unsetenv("WEFT_IO");
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = 1;
	cfg.io = WEFT_IO_AUTO;
	weft_runtime_t *rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, &cfg), 0);
	int be = weft_runtime_io_backend(rt);
	if (io_uring_probe() == 0) {
		cr_assert_eq(be, WEFT_IO_URING, "auto chose %d although io_uring works here", be);
		cr_assert_null(weft_runtime_io_note(rt), "note without a fallback: %s", weft_runtime_io_note(rt));
	} else {
		cr_assert_eq(be, WEFT_IO_EPOLL);
		cr_assert_not_null(weft_runtime_io_note(rt));
	}
	check_runtime_works(rt);
}

Test(errors, weft_io_env, .timeout = IO_TIMEOUT)
{
	unsetenv("WEFT_IO_INJECT_FAIL");
	weft_config_t cfg;
	setenv("WEFT_IO", "epoll", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io, WEFT_IO_EPOLL);
	setenv("WEFT_IO", "uring", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io, WEFT_IO_URING);
	setenv("WEFT_IO", "auto", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io, WEFT_IO_AUTO);
	setenv("WEFT_IO", "carrier-pigeon", 1);
	weft_config_init(&cfg);
	cr_assert_eq(cfg.io, WEFT_IO_AUTO, "a malformed WEFT_IO keeps the default");
	/* NULL cfg: defaults plus environment. */
	setenv("WEFT_IO", "epoll", 1);
	weft_runtime_t *rt = NULL;
	cr_assert_eq(weft_runtime_create(&rt, NULL), 0);
	cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	check_runtime_works(rt);
	unsetenv("WEFT_IO");
}
