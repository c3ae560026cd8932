/*
 * test_io.c: I/O between fibers and in the other contexts.  Echo of 10 000
 * messages over a socketpair and over TCP loopback (content checked);
 * weft_write_all/weft_read_full over short writes; a file read in chunks
 * (explicit offsets and the file position) against a checksum; readiness
 * polling; the blocking-style calls in plain tasks and off the workers;
 * accept: many acceptors on one listener, and an accept loop that takes
 * the connections already waiting without suspending.  Every test runs on
 * both backends.
 */
#define _GNU_SOURCE
#include "test_io_util.h"

/* ------------------------------------------------------------------ */
/* Echo                                                                 */

struct echo_client {
	int fd;
	uint64_t seed;
	long msgs;
	long done;
	uint64_t bytes;
	int connect_to; /* TCP: connect first */
	int nonblock;
	struct sockaddr_in addr;
	struct t_latch *latch;
};

/* The server side of one connection: echo until end of stream. */
struct echo_server {
	int fd;
	uint64_t bytes;
	ssize_t last;
	int close_rc;
	struct t_latch *latch;
};

static void echo_server_fiber(void *p)
{
	struct echo_server *s = p;
	unsigned char buf[4096];
	for (;;) {
		ssize_t r = weft_recv(s->fd, buf, sizeof buf, 0);
		s->last = r;
		if (r <= 0)
			break;
		ssize_t w = weft_write_all(s->fd, buf, (size_t)r, -1);
		T_CHECK_EQ(w, r);
		if (w != r)
			break;
		s->bytes += (uint64_t)r;
	}
	T_CHECK_EQ(s->last, 0); /* the client closed: end of stream */
	s->close_rc = weft_close(s->fd);
	if (s->latch)
		t_latch_done(s->latch);
}

#define ECHO_MAX 300

static void echo_client_fiber(void *p)
{
	struct echo_client *c = p;
	unsigned char out[ECHO_MAX], back[ECHO_MAX];
	uint64_t pos = 0;
	if (c->connect_to) {
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (c->nonblock ? SOCK_NONBLOCK : 0), 0);
		T_CHECK(c->fd >= 0);
		int rc = weft_connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr);
		T_CHECK_EQ(rc, 0);
		if (rc != 0)
			goto out;
	}
	for (long i = 0; i < c->msgs; i++) {
		size_t len = 1 + (size_t)((uint64_t)i * 7919 % ECHO_MAX);
		io_fill(out, len, c->seed, pos);
		ssize_t w = (i % 2) ? weft_write_all(c->fd, out, len, -1) : weft_send(c->fd, out, len, 0);
		if (w != (ssize_t)len) {
			/* weft_send may be short on a full buffer: finish it. */
			if (w > 0 && (i % 2) == 0) {
				ssize_t w2 = weft_write_all(c->fd, out + w, len - (size_t)w, -1);
				if (w2 == (ssize_t)(len - (size_t)w))
					w = (ssize_t)len;
			}
			if (w != (ssize_t)len) {
				t_fail_at(__FILE__, __LINE__, "msg %ld: write %zd of %zu", i, w, len);
				break;
			}
		}
		ssize_t r;
		if (i % 3 == 0) {
			r = weft_read_full(c->fd, back, len, -1);
		} else {
			size_t got = 0;
			r = 0;
			while (got < len) {
				r = weft_recv(c->fd, back + got, len - got, 0);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			if (got == len)
				r = (ssize_t)len;
		}
		if (r != (ssize_t)len) {
			t_fail_at(__FILE__, __LINE__, "msg %ld: read back %zd of %zu", i, r, len);
			break;
		}
		size_t bad = io_mismatch(back, len, c->seed, pos);
		if (bad != len) {
			t_fail_at(__FILE__, __LINE__, "msg %ld: byte %zu differs", i, bad);
			break;
		}
		pos += len;
		c->done++;
	}
	c->bytes = pos;
out:
	if (c->fd >= 0)
		T_CHECK_EQ(weft_close(c->fd), 0);
	t_latch_done(c->latch);
}

IO_TEST(io, echo_socketpair)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	long n = (long)t_size(10000, 1000);
	int sv[2];
	io_socketpair(sv);
	struct t_latch l;
	t_latch_init(&l, 2);
	struct echo_server s = {.fd = sv[1], .last = 1, .close_rc = 1, .latch = &l};
	struct echo_client c = {.fd = sv[0], .seed = 1, .msgs = n, .latch = &l};
	IO_GO(rt, echo_server_fiber, &s);
	IO_GO(rt, echo_client_fiber, &c);
	t_latch_wait(&l);
	T_ASSERT_CLEAN();
	cr_assert_eq(c.done, n, "%ld of %ld messages echoed", c.done, n);
	cr_assert_eq(s.bytes, c.bytes);
	cr_assert_eq(s.close_rc, 0);
	t_destroy(rt);
	t_latch_fini(&l);
}

/* TCP loopback: an acceptor fiber, one echo fiber per connection, client
 * fibers connecting with weft_connect (blocking and non-blocking sockets). */
#define TCP_CONNS 4

struct acceptor {
	int lfd;
	int n;
	struct echo_server srv[TCP_CONNS];
	struct t_latch *latch;
};

static void acceptor_fiber(void *p)
{
	struct acceptor *a = p;
	for (int i = 0; i < a->n; i++) {
		struct sockaddr_in peer;
		memset(&peer, 0xab, sizeof peer);
		socklen_t len = sizeof peer;
		int fd = weft_accept(a->lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
		T_CHECK(fd >= 0);
		if (fd < 0) {
			t_fail_at(__FILE__, __LINE__, "weft_accept = %d", fd);
			/* Let the latch open anyway. */
			for (int k = i; k < a->n; k++)
				t_latch_done(a->latch);
			return;
		}
		T_CHECK_EQ(len, sizeof(struct sockaddr_in));
		T_CHECK_EQ(peer.sin_family, AF_INET);
		T_CHECK_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
		a->srv[i] = (struct echo_server){.fd = fd, .last = 1, .close_rc = 1, .latch = a->latch};
		io_go_here(echo_server_fiber, &a->srv[i]);
	}
}

IO_TEST(io, echo_tcp_loopback)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	long n = (long)t_size(10000, 1000);
	struct sockaddr_in addr;
	int lfd = io_listener(&addr);
	struct t_latch l;
	t_latch_init(&l, 2 * TCP_CONNS);
	struct acceptor a;
	memset(&a, 0, sizeof a);
	a.lfd = lfd;
	a.n = TCP_CONNS;
	a.latch = &l;
	struct echo_client c[TCP_CONNS];
	IO_GO(rt, acceptor_fiber, &a);
	for (int i = 0; i < TCP_CONNS; i++) {
		c[i] = (struct echo_client){.fd = -1, .seed = 100 + (uint64_t)i, .msgs = n / TCP_CONNS,
		                            .connect_to = 1, .nonblock = i % 2, .addr = addr, .latch = &l};
		IO_GO(rt, echo_client_fiber, &c[i]);
	}
	t_latch_wait(&l);
	T_ASSERT_CLEAN();
	long total = 0;
	uint64_t cb = 0, sb = 0;
	for (int i = 0; i < TCP_CONNS; i++) {
		total += c[i].done;
		cb += c[i].bytes;
		sb += a.srv[i].bytes;
		cr_assert_eq(a.srv[i].close_rc, 0);
	}
	cr_assert_eq(total, n, "%ld of %ld messages echoed", total, n);
	cr_assert_eq(sb, cb);
	t_destroy(rt);
	close(lfd);
	t_latch_fini(&l);
}

/* ------------------------------------------------------------------ */
/* weft_write_all / weft_read_full across short writes                   */

struct bulk {
	int fd;
	unsigned char *buf;
	size_t len;
	ssize_t rc, rc_eof;
	int use_socket_send;
};

static void bulk_writer(void *p)
{
	struct bulk *b = p;
	b->rc = weft_write_all(b->fd, b->buf, b->len, -1);
	T_CHECK_EQ(weft_close(b->fd), 0);
}

static void bulk_reader(void *p)
{
	struct bulk *b = p;
	b->rc = weft_read_full(b->fd, b->buf, b->len, -1);
	/* The writer closed after the last byte: end of stream. */
	unsigned char extra[16];
	b->rc_eof = weft_read_full(b->fd, extra, sizeof extra, -1);
}

static void write_all_read_full_case(int backend, int use_pipe)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	size_t len = t_size(8u << 20, 1u << 20) + 13;
	int sv[2];
	if (use_pipe) {
		/* Not sockets: weft_write_all falls back to write(2). */
		cr_assert_eq(pipe2(sv, O_CLOEXEC), 0);
		int t = sv[0]; /* sv[0] writes, sv[1] reads, as below */
		sv[0] = sv[1];
		sv[1] = t;
	} else {
		io_socketpair(sv);
		/* Small buffers: the write is cut many times. */
		int small = 16384;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	}
	struct bulk w = {.fd = sv[0], .len = len, .rc = 1}, r = {.fd = sv[1], .len = len, .rc = 1, .rc_eof = 1};
	w.buf = malloc(len);
	r.buf = malloc(len);
	cr_assert(w.buf && r.buf);
	io_fill(w.buf, len, 7, 0);
	memset(r.buf, 0, len);
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, bulk_reader, &r);
	IO_GO_WG(rt, &wg, bulk_writer, &w);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(w.rc, (ssize_t)len, "weft_write_all = %zd of %zu", w.rc, len);
	cr_assert_eq(r.rc, (ssize_t)len, "weft_read_full = %zd of %zu", r.rc, len);
	cr_assert_eq(io_mismatch(r.buf, len, 7, 0), len);
	cr_assert_eq(r.rc_eof, 0, "weft_read_full at end of stream = %zd", r.rc_eof);
	close(sv[1]);
	free(w.buf);
	free(r.buf);
}

IO_TEST(io, write_all_read_full) { write_all_read_full_case(backend, 0); }
IO_TEST(io, write_all_read_full_pipe) { write_all_read_full_case(backend, 1); }

/* ------------------------------------------------------------------ */
/* A file in chunks                                                     */

#define FILE_CHUNK 3000

struct file_ctx {
	int fd;
	size_t size;
	uint64_t want_fnv;
	int nreaders;
	unsigned char *img; /* assembled by the offset readers */
	uint64_t seq_fnv;
	size_t seq_total;
	off_t pos_after_seq;
	off_t pos_after_pread;
	int mode; /* 0 fiber, 1 task, 2 thread */
};

struct file_reader {
	struct file_ctx *f;
	int id;
	int done_fd; /* fiber readers: send a byte here when done */
};

/* Write the file with weft_write at explicit offsets, chunk order shuffled. */
static void file_write_all_chunks(struct file_ctx *f)
{
	size_t nch = (f->size + FILE_CHUNK - 1) / FILE_CHUNK;
	size_t *order = malloc(nch * sizeof *order);
	unsigned char *chunk = malloc(FILE_CHUNK);
	if (!order || !chunk) {
		t_fail_at(__FILE__, __LINE__, "malloc");
		free(order);
		free(chunk);
		return;
	}
	for (size_t i = 0; i < nch; i++)
		order[i] = i;
	uint64_t seed = 4242;
	for (size_t i = nch - 1; i > 0; i--) {
		size_t j = (size_t)(t_rand(&seed) % (i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < nch; k++) {
		size_t at = order[k] * FILE_CHUNK, n = f->size - at < FILE_CHUNK ? f->size - at : FILE_CHUNK;
		io_fill(chunk, n, 11, at);
		ssize_t w = (k % 2) ? weft_write(f->fd, chunk, n, (off_t)at) : weft_write_all(f->fd, chunk, n, (off_t)at);
		T_CHECK_EQ(w, (ssize_t)n);
	}
	free(order);
	free(chunk);
}

/* Reader id reads every nreaders-th chunk at its offset into f->img. */
static void file_offset_reader(void *p)
{
	struct file_reader *r = p;
	struct file_ctx *f = r->f;
	size_t nch = (f->size + FILE_CHUNK - 1) / FILE_CHUNK;
	for (size_t c = (size_t)r->id; c < nch; c += (size_t)f->nreaders) {
		size_t at = c * FILE_CHUNK, n = f->size - at < FILE_CHUNK ? f->size - at : FILE_CHUNK;
		ssize_t got = weft_read(f->fd, f->img + at, FILE_CHUNK, (off_t)at);
		T_CHECK_EQ(got, (ssize_t)n); /* regular file: full unless at EOF */
	}
}

/* Sequential: the file position (off -1). */
static void file_seq_reader(struct file_ctx *f)
{
	unsigned char buf[FILE_CHUNK];
	uint64_t h = IO_FNV_INIT;
	size_t total = 0;
	T_CHECK_EQ(lseek(f->fd, 0, SEEK_SET), 0);
	for (;;) {
		ssize_t r = weft_read(f->fd, buf, sizeof buf, -1);
		if (r < 0) {
			t_fail_at(__FILE__, __LINE__, "weft_read(-1) = %zd", r);
			break;
		}
		if (r == 0)
			break;
		h = io_fnv(h, buf, (size_t)r);
		total += (size_t)r;
	}
	f->seq_fnv = h;
	f->seq_total = total;
	f->pos_after_seq = lseek(f->fd, 0, SEEK_CUR);
	/* An explicit offset does not move the position. */
	ssize_t r = weft_read(f->fd, buf, 100, 5);
	T_CHECK_EQ(r, 100);
	T_CHECK_EQ(io_mismatch(buf, 100, 11, 5), 100);
	f->pos_after_pread = lseek(f->fd, 0, SEEK_CUR);
	/* At the end: 0; read_full of more than is there: the rest. */
	T_CHECK_EQ(weft_read(f->fd, buf, sizeof buf, -1), 0);
	T_CHECK_EQ(weft_read(f->fd, buf, sizeof buf, (off_t)f->size), 0);
	T_CHECK_EQ(weft_read_full(f->fd, buf, sizeof buf, (off_t)(f->size - 10)), 10);
	T_CHECK_EQ(io_mismatch(buf, 10, 11, f->size - 10), 10);
	/* Writing at the position appends and advances it. */
	T_CHECK_EQ(lseek(f->fd, 0, SEEK_END), (off_t)f->size);
	T_CHECK_EQ(weft_write(f->fd, "tail", 4, -1), 4);
	T_CHECK_EQ(lseek(f->fd, 0, SEEK_CUR), (off_t)f->size + 4);
	T_CHECK_EQ(ftruncate(f->fd, (off_t)f->size), 0);
}

static void file_all(struct file_ctx *f)
{
	file_write_all_chunks(f);
	struct file_reader r = {f, 0, -1};
	int saved = f->nreaders;
	f->nreaders = 1;
	file_offset_reader(&r);
	f->nreaders = saved;
	file_seq_reader(f);
}

static void file_all_task(void *p) { file_all(p); }

struct file_fiber_ctx {
	struct file_ctx *f;
	struct file_reader r[8];
	int done_sv[2]; /* readers send a byte each when done */
	struct t_latch done;
};

static void file_fiber_reader(void *p)
{
	struct file_reader *r = p;
	file_offset_reader(r);
	T_CHECK_EQ(weft_send(r->done_fd, "d", 1, 0), 1);
}

static void file_fiber_main(void *p)
{
	struct file_fiber_ctx *x = p;
	struct file_ctx *f = x->f;
	file_write_all_chunks(f);
	/* Readers in parallel, each on its chunks, then sequential. */
	for (int i = 0; i < f->nreaders; i++) {
		x->r[i] = (struct file_reader){f, i, x->done_sv[1]};
		io_go_here(file_fiber_reader, &x->r[i]);
	}
	/* Wait for them without blocking the worker. */
	char done[8];
	T_CHECK_EQ(weft_read_full(x->done_sv[0], done, (size_t)f->nreaders, -1), f->nreaders);
	file_seq_reader(f);
	t_latch_done(&x->done);
}

static int make_temp_file(void)
{
	const char *dir = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/weft-io-test-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp(%s): %s", path, strerror(errno));
	unlink(path);
	return fd;
}

static void file_case(int backend, int mode)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct file_ctx f;
	memset(&f, 0, sizeof f);
	f.fd = make_temp_file();
	f.size = t_size(4u << 20, 512u << 10) + 1234;
	f.nreaders = 8;
	f.img = calloc(1, f.size + FILE_CHUNK);
	cr_assert_not_null(f.img);
	unsigned char *want = malloc(f.size);
	cr_assert_not_null(want);
	io_fill(want, f.size, 11, 0);
	f.want_fnv = io_fnv(IO_FNV_INIT, want, f.size);
	f.mode = mode;
	if (mode == 0) {
		struct file_fiber_ctx x;
		memset(&x, 0, sizeof x);
		x.f = &f;
		io_socketpair(x.done_sv);
		t_latch_init(&x.done, 1);
		IO_GO(rt, file_fiber_main, &x);
		t_latch_wait(&x.done);
		t_latch_fini(&x.done);
		close(x.done_sv[0]);
		close(x.done_sv[1]);
	} else if (mode == 1) {
		t_run(rt, file_all_task, &f);
	} else {
		file_all(&f); /* off the workers: plain system calls */
	}
	T_ASSERT_CLEAN();
	struct stat st;
	cr_assert_eq(fstat(f.fd, &st), 0);
	cr_assert_eq((size_t)st.st_size, f.size);
	cr_assert_eq(io_fnv(IO_FNV_INIT, f.img, f.size), f.want_fnv, "chunks read at offsets: checksum differs");
	cr_assert_eq(f.seq_total, f.size);
	cr_assert_eq(f.seq_fnv, f.want_fnv, "sequential read (off -1): checksum differs");
	cr_assert_eq(f.pos_after_seq, (off_t)f.size, "file position after reading with off -1");
	cr_assert_eq(f.pos_after_pread, (off_t)f.size, "a read at an explicit offset moved the position");
	/* And the file really holds what was written (plain pread). */
	unsigned char *chk = malloc(f.size);
	cr_assert_not_null(chk);
	cr_assert_eq(pread(f.fd, chk, f.size, 0), (ssize_t)f.size);
	cr_assert_eq(memcmp(chk, want, f.size), 0);
	t_destroy(rt);
	close(f.fd);
	free(chk);
	free(want);
	free(f.img);
}

IO_TEST(io, file_chunks_in_fibers) { file_case(backend, 0); }
IO_TEST(io, file_chunks_in_task) { file_case(backend, 1); }
IO_TEST(io, file_chunks_off_workers) { file_case(backend, 2); }

/* ------------------------------------------------------------------ */
/* A recv that waited is followed by recvs whose data is already there   */
/* (epoll arms such recvs before trying them: they must still complete). */

struct rwait {
	int sv[2];
	ssize_t first;
	ssize_t got[6];
};

static void rwait_fiber(void *p)
{
	struct rwait *r = p;
	char buf[64];
	weft_op_t op;

	/* Nothing to read: the first try says EAGAIN and the recv waits. */
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_RECV;
	op.fd = r->sv[0];
	op.buf = buf;
	op.len = sizeof buf;
	op.timeout_ns = 2000000;
	r->first = weft_op_run(&op);
	/* Now the data is there before each recv starts. */
	for (int i = 0; i < 6; i++) {
		T_CHECK_EQ(send(r->sv[1], "m", 1, 0), 1);
		memset(&op, 0, sizeof op);
		op.opcode = WEFT_OP_RECV;
		op.fd = r->sv[0];
		op.buf = buf;
		op.len = sizeof buf;
		op.timeout_ns = 5000000000ull; /* a lost readiness fails, not hangs */
		r->got[i] = weft_op_run(&op);
	}
}

IO_TEST(io, recv_data_already_there_after_a_wait)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct rwait r;
	struct io_wg wg;

	memset(&r, 0, sizeof r);
	io_socketpair(r.sv);
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, rwait_fiber, &r);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert_eq(r.first, -ETIMEDOUT, "recv on an empty socket = %zd", r.first);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(r.got[i], 1, "recv %d with its byte already there = %zd", i, r.got[i]);
	close(r.sv[0]);
	close(r.sv[1]);
}

/* ------------------------------------------------------------------ */
/* Readiness: WEFT_OP_POLL                                              */

struct pollc {
	int fd_wait, fd_send;
	ssize_t in_res, out_res;
	atomic_int waiting;
};

static void poll_waiter(void *p)
{
	struct pollc *c = p;
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = c->fd_wait;
	op.flags = POLLOUT;
	c->out_res = weft_op_run(&op); /* a fresh socket: writable at once */
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = c->fd_wait;
	op.flags = POLLIN;
	atomic_store(&c->waiting, 1);
	c->in_res = weft_op_run(&op);
	T_CHECK_EQ(op.result, c->in_res);
	/* Readiness only: the byte is still there. */
	char b = 0;
	T_CHECK_EQ(weft_recv(c->fd_wait, &b, 1, MSG_DONTWAIT), 1);
	T_CHECK_EQ(b, 'p');
}

static void poll_sender(void *p)
{
	struct pollc *c = p;
	T_CHECK(io_yield_until(&c->waiting, 1000000));
	T_CHECK_EQ(weft_send(c->fd_send, "p", 1, 0), 1);
}

IO_TEST(io, poll_readiness)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	int sv[2];
	io_socketpair(sv);
	struct pollc c = {.fd_wait = sv[0], .fd_send = sv[1], .in_res = -1, .out_res = -1};
	struct io_wg wg;
	io_wg_init(&wg);
	IO_GO_WG(rt, &wg, poll_waiter, &c);
	IO_GO_WG(rt, &wg, poll_sender, &c);
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	cr_assert(c.out_res > 0 && (c.out_res & POLLOUT), "POLLOUT poll = %zd", c.out_res);
	cr_assert(c.in_res > 0 && (c.in_res & POLLIN), "POLLIN poll = %zd", c.in_res);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* In a plain task: weft_recv waits while the worker helps              */

struct task_recv {
	int sv[2];
	ssize_t got;
	char buf[8];
	atomic_int sent;
};

static void task_recv_sender(void *p)
{
	struct task_recv *t = p;
	T_CHECK_EQ(weft_sleep(2000000), 0);
	atomic_store(&t->sent, 1);
	T_CHECK_EQ(weft_send(t->sv[1], "hello", 5, 0), 5);
}

static void task_recv_task(void *p)
{
	struct task_recv *t = p;
	T_CHECK(!weft_in_fiber());
	/* One worker: the sender can only run while this task waits. */
	io_go_here(task_recv_sender, t);
	t->got = weft_recv(t->sv[0], t->buf, sizeof t->buf, 0);
	T_CHECK_EQ(atomic_load(&t->sent), 1);
}

IO_TEST(io, recv_in_task)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct task_recv t;
	memset(&t, 0, sizeof t);
	io_socketpair(t.sv);
	t_run(rt, task_recv_task, &t);
	cr_assert_eq(t.got, 5);
	cr_assert_eq(memcmp(t.buf, "hello", 5), 0);
	T_ASSERT_CLEAN();
	t_destroy(rt);
	close(t.sv[0]);
	close(t.sv[1]);
}

/* Callback ops: a RECV whose callback gets the data. */
struct cb_recv {
	weft_op_t op;
	char buf[16];
	ssize_t result;
	int worker;
	atomic_int calls;
	struct t_latch latch;
};

static void cb_recv_fn(weft_op_t *op)
{
	struct cb_recv *c = op->data;
	c->result = op->result;
	c->worker = weft_worker_index();
	atomic_fetch_add(&c->calls, 1);
	t_latch_done(&c->latch);
}

IO_TEST(io, recv_callback)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int sv[2];
	io_socketpair(sv);
	struct cb_recv c;
	memset(&c, 0, sizeof c);
	t_latch_init(&c.latch, 1);
	c.worker = -2;
	c.op.opcode = WEFT_OP_RECV;
	c.op.fd = sv[0];
	c.op.buf = c.buf;
	c.op.len = sizeof c.buf;
	c.op.cb = cb_recv_fn;
	c.op.data = &c;
	cr_assert_eq(weft_op_submit(rt, &c.op), 0);
	/* Nothing to read yet: the op waits; now send (plain send). */
	cr_assert_eq(send(sv[1], "callback", 8, 0), 8);
	t_latch_wait(&c.latch);
	cr_assert_eq(atomic_load(&c.calls), 1);
	cr_assert_eq(c.result, 8, "recv callback result %zd", c.result);
	cr_assert_eq(c.op.result, 8);
	cr_assert_eq(memcmp(c.buf, "callback", 8), 0);
	cr_assert(c.worker >= 0 && c.worker < 2);
	t_destroy(rt);
	t_latch_fini(&c.latch);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* Off the workers: the plain system calls                              */

IO_TEST(io, calls_off_workers)
{
	weft_runtime_t *rt = io_rt(backend, 1); /* exists; this thread is not its */
	int sv[2];
	io_socketpair(sv);
	cr_assert_eq(weft_in_fiber(), 0);
	char buf[16];

	errno = EDOM;
	cr_assert_eq(weft_send(sv[1], "abc", 3, 0), 3);
	cr_assert_eq(weft_recv(sv[0], buf, sizeof buf, 0), 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	cr_assert_eq(weft_write(sv[0], "xy", 2, -1), 2);
	cr_assert_eq(weft_read(sv[1], buf, sizeof buf, -1), 2);
	cr_assert_eq(errno, EDOM, "errno changed by successful calls");

	/* Errors are results; errno is left alone, also when the system
	 * call itself failed. */
	cr_assert_eq(weft_recv(-1, buf, 1, 0), -EBADF);
	cr_assert_eq(errno, EDOM, "errno changed by a failed call (fd -1)");
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(devnull, 0);
	errno = EDOM;
	cr_assert_eq(weft_recv(devnull, buf, 1, 0), -ENOTSOCK);
	cr_assert_eq(errno, EDOM, "weft_recv off the workers left errno = %d (%s)", errno, strerror(errno));
	close(devnull);
	errno = EDOM;

	/* A timeout off the workers is honoured. */
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_RECV;
	op.fd = sv[0];
	op.buf = buf;
	op.len = sizeof buf;
	op.timeout_ns = 20000000;
	uint64_t t0 = io_now_ns();
	ssize_t r = weft_op_run(&op);
	uint64_t took = io_now_ns() - t0;
	cr_assert_eq(r, -ETIMEDOUT, "recv with timeout off the workers = %zd", r);
	cr_assert_eq(op.result, -ETIMEDOUT);
	cr_assert_geq(took, 20000000ULL);
	cr_assert_lt(took, 5000000000ULL);

	/* Accept and connect on loopback, and close. */
	struct sockaddr_in a;
	int l = io_listener(&a);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(weft_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	struct sockaddr_in peer;
	socklen_t plen = sizeof peer;
	int s = weft_accept(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	cr_assert_geq(s, 0, "weft_accept off the workers = %d", s);
	cr_assert_eq(plen, sizeof peer);
	cr_assert_eq(fcntl(s, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "accept flags honoured");
	cr_assert_eq(weft_write_all(c, "0123456789", 10, -1), 10);
	cr_assert_eq(weft_read_full(s, buf, 10, -1), 10);
	cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
	cr_assert_eq(weft_close(s), 0);
	cr_assert_eq(fcntl(s, F_GETFD), -1, "weft_close did not close the fd");
	cr_assert_eq(weft_close(c), 0);
	cr_assert_eq(weft_close(l), 0);
	cr_assert_eq(weft_close(sv[0]), 0);
	cr_assert_eq(weft_close(sv[1]), 0);
	t_destroy(rt);
}

/* ------------------------------------------------------------------ */
/* Full duplex: one fiber reads an fd while another writes the same fd   */

struct duplex_side {
	int fd;
	uint64_t seed_out, seed_in;
	unsigned char *out, *in;
	size_t len;
	ssize_t wrc, rrc;
};

static void duplex_writer(void *p)
{
	struct duplex_side *d = p;
	d->wrc = weft_write_all(d->fd, d->out, d->len, -1);
}

static void duplex_reader(void *p)
{
	struct duplex_side *d = p;
	d->rrc = weft_read_full(d->fd, d->in, d->len, -1);
}

IO_TEST(io, full_duplex_same_fd)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	int sv[2];
	io_socketpair(sv);
	int small = 8192;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	}
	size_t len = t_size(4u << 20, 512u << 10) + 3;
	struct duplex_side d[2];
	for (int i = 0; i < 2; i++) {
		d[i] = (struct duplex_side){.fd = sv[i], .seed_out = 20 + (uint64_t)i, .seed_in = 21 - (uint64_t)i,
		                            .len = len, .wrc = 1, .rrc = 1};
		d[i].out = malloc(len);
		d[i].in = malloc(len);
		cr_assert(d[i].out && d[i].in);
		io_fill(d[i].out, len, d[i].seed_out, 0);
	}
	struct io_wg wg;
	io_wg_init(&wg);
	for (int i = 0; i < 2; i++) {
		IO_GO_WG(rt, &wg, duplex_reader, &d[i]);
		IO_GO_WG(rt, &wg, duplex_writer, &d[i]);
	}
	io_finish(rt, &wg);
	T_ASSERT_CLEAN();
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(d[i].wrc, (ssize_t)len, "side %d: write_all = %zd", i, d[i].wrc);
		cr_assert_eq(d[i].rrc, (ssize_t)len, "side %d: read_full = %zd", i, d[i].rrc);
		cr_assert_eq(io_mismatch(d[i].in, len, d[i].seed_in, 0), len, "side %d: content", i);
		free(d[i].out);
		free(d[i].in);
	}
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* Several fibers accepting on one listener: every connection once; the  */
/* acceptors still waiting at destroy end with -ECANCELED.               */

#define ACC_FIBERS 4

struct multi_acc {
	int lfd;
	int nconn;
	atomic_int accepted;
	_Atomic uint8_t *seen; /* [nconn] */
	atomic_int cancelled;
	atomic_int other;
	struct t_latch all_done;
};

static void multi_acc_fiber(void *p)
{
	struct multi_acc *m = p;
	for (;;) {
		int fd = weft_accept(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (fd == -ECANCELED)
				atomic_fetch_add(&m->cancelled, 1);
			else
				atomic_fetch_add(&m->other, 1);
			return;
		}
		uint32_t id = 0;
		ssize_t r = weft_read_full(fd, &id, sizeof id, -1);
		T_CHECK_EQ(r, (ssize_t)sizeof id);
		if (r == (ssize_t)sizeof id && id < (uint32_t)m->nconn)
			atomic_fetch_add(&m->seen[id], 1);
		else
			t_fail_at(__FILE__, __LINE__, "connection id %u", id);
		T_CHECK_EQ(weft_close(fd), 0);
		if (atomic_fetch_add(&m->accepted, 1) + 1 == m->nconn)
			t_latch_done(&m->all_done);
	}
}

IO_TEST(io, many_acceptors_one_listener)
{
	weft_runtime_t *rt = io_rt(backend, 2);
	struct multi_acc m;
	memset(&m, 0, sizeof m);
	struct sockaddr_in a;
	m.lfd = io_listener(&a);
	m.nconn = (int)t_size(200, 40);
	m.seen = calloc((size_t)m.nconn, 1);
	cr_assert_not_null(m.seen);
	t_latch_init(&m.all_done, 1);
	for (int i = 0; i < ACC_FIBERS; i++)
		IO_GO(rt, multi_acc_fiber, &m);
	for (int i = 0; i < m.nconn; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(c, 0);
		cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
		uint32_t id = (uint32_t)i;
		cr_assert_eq(send(c, &id, sizeof id, 0), (ssize_t)sizeof id);
		close(c);
	}
	t_latch_wait(&m.all_done);
	t_destroy(rt); /* the acceptors wait again: destroy cancels them */
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&m.accepted), m.nconn);
	for (int i = 0; i < m.nconn; i++)
		cr_assert_eq(m.seen[i], 1, "connection %d accepted %d times", i, m.seen[i]);
	cr_assert_eq(atomic_load(&m.cancelled), ACC_FIBERS, "acceptors ended by destroy: %d of %d (other: %d)",
	             atomic_load(&m.cancelled), ACC_FIBERS, atomic_load(&m.other));
	t_latch_fini(&m.all_done);
	close(m.lfd);
	free(m.seen);
}

/* ------------------------------------------------------------------ */
/* An accept loop drains a backlog without suspending                   */

#define BACKLOG_CONNS 16

struct backlog {
	int lfd;
	atomic_int started;     /* connection fibers that have run */
	int started_at[BACKLOG_CONNS]; /* `started` at each accept's return */
	int fds[BACKLOG_CONNS];
	struct t_latch done;    /* the connection fibers, and the acceptor */
};

struct backlog_conn {
	struct backlog *b;
	int fd;
};

static void backlog_conn_fiber(void *p)
{
	struct backlog_conn *c = p;

	atomic_fetch_add(&c->b->started, 1);
	T_CHECK_EQ(weft_close(c->fd), 0);
	t_latch_done(&c->b->done);
	free(c);
}

/* weft_go queues each connection's fiber behind this one, which runs on
 * the only worker: a connection fiber can run before the last accept
 * only if an accept suspended, though its connection was already
 * waiting (an accept loop would then take one connection per round of
 * the worker's other work). */
static void backlog_acceptor(void *p)
{
	struct backlog *b = p;

	for (int i = 0; i < BACKLOG_CONNS; i++) {
		int fd = weft_accept(b->lfd, NULL, NULL, SOCK_CLOEXEC);
		b->started_at[i] = atomic_load(&b->started);
		if (fd < 0) {
			t_fail_at(__FILE__, __LINE__, "weft_accept %d = %d", i, fd);
			t_latch_done(&b->done);
			continue;
		}
		struct backlog_conn *c = malloc(sizeof *c);
		T_CHECK(c != NULL);
		if (!c) {
			close(fd);
			t_latch_done(&b->done);
			continue;
		}
		c->b = b;
		c->fd = fd;
		io_go_here(backlog_conn_fiber, c);
	}
	t_latch_done(&b->done);
}

IO_TEST(io, accept_loop_takes_waiting_connections_at_once)
{
	weft_runtime_t *rt = io_rt(backend, 1);
	struct backlog b;
	struct sockaddr_in a;

	memset(&b, 0, sizeof b);
	b.lfd = io_listener(&a);
	/* The handshakes complete in the kernel: all wait in the backlog
	 * before the acceptor starts. */
	for (int i = 0; i < BACKLOG_CONNS; i++) {
		b.fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(b.fds[i], 0);
		cr_assert_eq(connect(b.fds[i], (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	}
	t_latch_init(&b.done, BACKLOG_CONNS + 1);
	IO_GO(rt, backlog_acceptor, &b);
	t_latch_wait(&b.done);
	t_destroy(rt);
	T_ASSERT_CLEAN();
	cr_assert_eq(atomic_load(&b.started), BACKLOG_CONNS);
	for (int i = 0; i < BACKLOG_CONNS; i++)
		cr_assert_eq(b.started_at[i], 0, "%s: accept %d returned after %d connection fibers ran",
		             io_name(backend), i, b.started_at[i]);
	for (int i = 0; i < BACKLOG_CONNS; i++)
		close(b.fds[i]);
	t_latch_fini(&b.done);
	close(b.lfd);
}
