/*
 * test_http.c: weft-httpd (tools/httpd.[ch]) started in-process on an
 * ephemeral loopback port, driven by plain blocking sockets from the test
 * thread (SO_RCVTIMEO/SO_SNDTIMEO: a server bug fails a check instead of
 * hanging the test).  Every test runs on both backends: HTTP_TEST defines
 * name_uring and name_epoll.  When io_uring cannot be set up here, the
 * uring variant runs on whatever WEFT_IO_AUTO picks (epoll) and says so.
 *
 * Every test stops every server it starts and destroys its runtime; the
 * fd_leak test counts /proc/self/fd around a server's whole life.
 * WEFT_TEST_QUICK (test_util.h) shrinks the request counts and the number
 * of concurrent connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"

/* Criterion's per-test timeout (seconds). */
#define HT_TIMEOUT 60
/* Client socket timeouts (seconds): well below HT_TIMEOUT. */
#define CLI_TIMEOUT_S 10

#define HTTP_TEST(name, ...)                                                        \
	static void name(int backend);                                               \
	Test(http, name##_uring, .timeout = HT_TIMEOUT, ##__VA_ARGS__)               \
	{                                                                            \
		name(WEFT_IO_URING);                                                 \
	}                                                                            \
	Test(http, name##_epoll, .timeout = HT_TIMEOUT, ##__VA_ARGS__)               \
	{                                                                            \
		name(WEFT_IO_EPOLL);                                                 \
	}                                                                            \
	static void name(int backend)

/* ------------------------------------------------------------------ */
/* Files under a temporary root                                         */

#define BIG_BYTES (1u << 20)
#define DATA_BYTES 100000u

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)((i * 7 + (i >> 8)) & 0xff);
}

struct tree {
	char base[PATH_MAX];
	char root[PATH_MAX + 16];
	char outside[PATH_MAX + 16];
};

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void pathf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *dst, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dst, cap, fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < cap);
}

/*
 * base/root/hello.txt        "hello file\n"
 * base/root/sub/data.bin     DATA_BYTES of pattern
 * base/root/big.bin          BIG_BYTES of pattern
 * base/root/in_link       -> hello.txt              (inside: allowed)
 * base/root/out_link      -> ../outside/secret.txt  (leaves the root)
 * base/root/out_dir       -> ../outside             (leaves the root)
 * base/root/abs_link      -> /abs/base/outside/secret.txt
 * base/root/fifo             a FIFO (must not block the server)
 * base/outside/secret.txt    "secret\n"
 */
static void remove_base(const char *base);

/* Trees still on disk (copies of their base paths), removed at exit when a
 * failed check cut a test short (each test runs in its own process). */
static char live_bases[4][PATH_MAX];

static void trees_cleanup(void)
{
	for (size_t i = 0; i < sizeof live_bases / sizeof live_bases[0]; i++)
		if (live_bases[i][0])
			remove_base(live_bases[i]);
}

static void tree_make(struct tree *t)
{
	char p[PATH_MAX + 64], q[PATH_MAX + 64];
	static bool registered;
	strcpy(t->base, "/tmp/weft-httpd-test.XXXXXX");
	cr_assert_not_null(mkdtemp(t->base), "mkdtemp: %s", strerror(errno));
	if (!registered)
		atexit(trees_cleanup);
	registered = true;
	for (size_t i = 0; i < sizeof live_bases / sizeof live_bases[0]; i++)
		if (!live_bases[i][0]) {
			strcpy(live_bases[i], t->base);
			break;
		}
	pathf(t->root, sizeof t->root, "%s/root", t->base);
	pathf(t->outside, sizeof t->outside, "%s/outside", t->base);
	cr_assert_eq(mkdir(t->root, 0755), 0);
	cr_assert_eq(mkdir(t->outside, 0755), 0);
	pathf(p, sizeof p, "%s/sub", t->root);
	cr_assert_eq(mkdir(p, 0755), 0);

	pathf(p, sizeof p, "%s/hello.txt", t->root);
	write_file(p, "hello file\n", 11);
	pathf(p, sizeof p, "%s/secret.txt", t->outside);
	write_file(p, "secret\n", 7);
	unsigned char *buf = malloc(BIG_BYTES);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < BIG_BYTES; i++)
		buf[i] = pattern_byte(i);
	pathf(p, sizeof p, "%s/sub/data.bin", t->root);
	write_file(p, buf, DATA_BYTES);
	pathf(p, sizeof p, "%s/big.bin", t->root);
	write_file(p, buf, BIG_BYTES);
	free(buf);

	pathf(p, sizeof p, "%s/in_link", t->root);
	cr_assert_eq(symlink("hello.txt", p), 0);
	pathf(p, sizeof p, "%s/out_link", t->root);
	cr_assert_eq(symlink("../outside/secret.txt", p), 0);
	pathf(p, sizeof p, "%s/out_dir", t->root);
	cr_assert_eq(symlink("../outside", p), 0);
	pathf(p, sizeof p, "%s/abs_link", t->root);
	pathf(q, sizeof q, "%s/secret.txt", t->outside);
	cr_assert_eq(symlink(q, p), 0);
	pathf(p, sizeof p, "%s/fifo", t->root);
	cr_assert_eq(mkfifo(p, 0644), 0);
}

/* No cr_assert here: also called at exit. */
static void remove_base(const char *base)
{
	static const char *const names[] = {
		"root/hello.txt", "root/sub/data.bin", "root/big.bin", "root/in_link", "root/out_link",
		"root/out_dir",   "root/abs_link",     "root/fifo",    "outside/secret.txt",
	};
	static const char *const dirs[] = { "root/sub", "root", "outside", "" };
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof live_bases / sizeof live_bases[0]; i++)
		if (live_bases[i] != base && !strcmp(live_bases[i], base))
			live_bases[i][0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", base, names[i]);
		unlink(p);
	}
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", base, dirs[i]);
		rmdir(p);
	}
}

static void tree_remove(struct tree *t)
{
	remove_base(t->base);
}

/* ------------------------------------------------------------------ */
/* A runtime and a server                                               */

struct srv {
	weft_runtime_t *rt;
	struct httpd *h;
	int port;
	struct tree tree;
	bool have_tree;
};

static weft_runtime_t *rt_make(int backend, unsigned workers)
{
	weft_config_t cfg;
	weft_runtime_t *rt = NULL;
	weft_config_init(&cfg);
	cfg.workers = workers;
	cfg.io = backend;
	int rc = weft_runtime_create(&rt, &cfg);
	if (rc < 0 && backend == WEFT_IO_URING) {
		cr_log_warn("io_uring unavailable here (%s): this variant runs on the fallback backend",
		            weft_strerror(rc));
		cfg.io = WEFT_IO_AUTO;
		rc = weft_runtime_create(&rt, &cfg);
	}
	cr_assert_eq(rc, 0, "weft_runtime_create: %s", weft_strerror(rc));
	if (backend == WEFT_IO_EPOLL)
		cr_assert_eq(weft_runtime_io_backend(rt), WEFT_IO_EPOLL);
	return rt;
}

/* Start rt (if s->rt is NULL) and a server on 127.0.0.1:0.  cfg may be
 * NULL; a NULL cfg->root gets the temporary tree. */
static void srv_start(struct srv *s, int backend, const struct httpd_config *cfg_in)
{
	struct httpd_config cfg;
	if (cfg_in)
		cfg = *cfg_in;
	else
		httpd_config_init(&cfg);
	if (!s->rt)
		s->rt = rt_make(backend, 2);
	if (!cfg.root) {
		tree_make(&s->tree);
		s->have_tree = true;
		cfg.root = s->tree.root;
	}
	cfg.host = "127.0.0.1";
	cfg.port = 0;
	int rc = httpd_start(s->rt, &cfg, &s->h);
	cr_assert(rc > 0, "httpd_start: %s", weft_strerror(rc));
	cr_assert_eq(httpd_port(s->h), rc);
	s->port = rc;
}

static void srv_stop(struct srv *s)
{
	if (s->h)
		cr_assert_eq(httpd_stop(s->h), 0);
	s->h = NULL;
	if (s->rt)
		t_destroy(s->rt);
	s->rt = NULL;
	if (s->have_tree)
		tree_remove(&s->tree);
	s->have_tree = false;
}

static struct httpd_stats srv_stats(struct srv *s)
{
	struct httpd_stats st;
	httpd_get_stats(s->h, &st);
	return st;
}

/* Wait (up to 5 s) until the server has exactly `active` connections. */
static void srv_wait_active(struct srv *s, uint64_t active)
{
	double t0 = t_now();
	while (srv_stats(s).active != active && t_now() - t0 < 5.0)
		t_sleep_ms(2);
	cr_assert_eq(srv_stats(s).active, active, "server has %llu connections, want %llu",
	             (unsigned long long)srv_stats(s).active, (unsigned long long)active);
}

/* ------------------------------------------------------------------ */
/* Clients                                                              */

struct cli {
	int fd;
	char *buf;
	size_t len, cap;
};

struct resp {
	int status;
	size_t clen;
	bool has_clen;
	bool conn_close;
	bool conn_keepalive;
	char head[1024];
	char *body; /* clen bytes + NUL, owned by the resp */
};

static int sock_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	struct timeval tv = { CLI_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	cr_assert_eq(rc, 0, "connect: %s", strerror(errno));
	return fd;
}

static void cli_open(struct cli *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = sock_connect(port);
}

static void cli_close(struct cli *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

/* Reset the connection: SO_LINGER 0, close -> RST. */
static void cli_reset(struct cli *c)
{
	struct linger lg = { 1, 0 };
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	cli_close(c);
}

static void send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert(n > 0, "send: %s", n < 0 ? strerror(errno) : "0");
		p += n;
		len -= (size_t)n;
	}
}

static void cli_send(struct cli *c, const char *s)
{
	send_all(c->fd, s, strlen(s));
}

/* One recv into c->buf: >0 bytes, 0 EOF, -errno (-EAGAIN: timed out). */
static ssize_t cli_fill(struct cli *c)
{
	if (c->cap - c->len < 65536) {
		size_t cap = c->cap ? c->cap * 2 : 131072;
		char *p = realloc(c->buf, cap);
		cr_assert_not_null(p);
		c->buf = p;
		c->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		c->len += (size_t)n;
		return n;
	}
}

static void cli_consume(struct cli *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

static const char *find_header(const char *head, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
			return p + 3 + n + strspn(p + 3 + n, " ");
	return NULL;
}

/* Read one response.  0, or -1 when the connection ended (EOF or reset)
 * before a complete response.  A timeout fails the test. */
static int cli_resp(struct cli *c, struct resp *r, bool head_only)
{
	char *end;
	memset(r, 0, sizeof *r);
	for (;;) {
		if (c->len) {
			c->buf[c->len] = '\0';
			end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			if (end)
				break;
		}
		ssize_t n = cli_fill(c);
		cr_assert_neq(n, -EAGAIN, "timed out waiting for a response head");
		if (n <= 0)
			return -1;
	}
	size_t hlen = (size_t)(end - c->buf) + 4;
	cr_assert_lt(hlen, sizeof r->head, "response head too long");
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	cr_assert_eq(strncmp(r->head, "HTTP/1.1 ", 9), 0, "bad status line: %.40s", r->head);
	r->status = atoi(r->head + 9);
	const char *cl = find_header(r->head, "Content-Length");
	if (cl) {
		r->has_clen = true;
		r->clen = strtoull(cl, NULL, 10);
	}
	const char *cn = find_header(r->head, "Connection");
	r->conn_close = cn && strncasecmp(cn, "close", 5) == 0;
	r->conn_keepalive = cn && strncasecmp(cn, "keep-alive", 10) == 0;
	cli_consume(c, hlen);
	size_t blen = head_only ? 0 : r->clen;
	while (c->len < blen) {
		ssize_t n = cli_fill(c);
		cr_assert_neq(n, -EAGAIN, "timed out waiting for a response body");
		if (n <= 0)
			return -1;
	}
	r->body = malloc(blen + 1);
	cr_assert_not_null(r->body);
	memcpy(r->body, c->buf, blen);
	r->body[blen] = '\0';
	cli_consume(c, blen);
	return 0;
}

/* Expect the server to close: EOF (or a reset) with nothing more to read,
 * within CLI_TIMEOUT_S.  Returns the seconds it took. */
static double cli_expect_eof(struct cli *c)
{
	double t0 = t_now();
	cr_assert_eq(c->len, 0, "unexpected bytes before EOF: %.60s", c->buf);
	ssize_t n = cli_fill(c);
	cr_assert_neq(n, -EAGAIN, "server did not close the connection");
	cr_assert(n <= 0, "unexpected bytes instead of EOF: %.60s", c->buf);
	return t_now() - t0;
}

static char *req_get(char *dst, size_t cap, const char *method, const char *path)
{
	pathf(dst, cap, "%s %s HTTP/1.1\r\nHost: test\r\n\r\n", method, path);
	return dst;
}

/* GET path on c, expect status (and body when body is not NULL). */
static void get_expect(struct cli *c, const char *path, int status, const char *body)
{
	char req[2048];
	struct resp r;
	cli_send(c, req_get(req, sizeof req, "GET", path));
	cr_assert_eq(cli_resp(c, &r, false), 0, "GET %s: connection closed", path);
	cr_assert_eq(r.status, status, "GET %s: status %d, want %d (%s)", path, r.status, status, r.body);
	cr_assert(r.has_clen, "GET %s: no Content-Length", path);
	if (body)
		cr_assert_str_eq(r.body, body, "GET %s", path);
	cr_assert(!r.conn_close, "GET %s: unexpected Connection: close", path);
	resp_free(&r);
}

/* Expect an error answer with Connection: close, then EOF. */
static void expect_error_close(struct cli *c, int status, const char *what)
{
	struct resp r;
	cr_assert_eq(cli_resp(c, &r, false), 0, "%s: no answer", what);
	cr_assert_eq(r.status, status, "%s: status %d, want %d", what, r.status, status);
	cr_assert(r.conn_close, "%s: no Connection: close", what);
	resp_free(&r);
	cli_expect_eof(c);
}

/* ------------------------------------------------------------------ */
/* Routes                                                               */

HTTP_TEST(hello)
{
	struct srv s = { 0 };
	struct cli c;
	struct resp r;
	char req[256];

	srv_start(&s, backend, NULL);
	cli_open(&c, s.port);
	get_expect(&c, "/", 200, "Hello, World!");
	get_expect(&c, "/?x=1", 200, "Hello, World!");

	/* HEAD: the GET's Content-Length, no body (the next answer parses). */
	cli_send(&c, req_get(req, sizeof req, "HEAD", "/"));
	cr_assert_eq(cli_resp(&c, &r, true), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.clen, 13);
	resp_free(&r);
	get_expect(&c, "/", 200, "Hello, World!");

	/* The whole answer, byte for byte up to the Date. */
	cli_send(&c, req_get(req, sizeof req, "GET", "/"));
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert(strstr(r.head, "Content-Type: text/plain\r\n"));
	cr_assert(strstr(r.head, "Content-Length: 13\r\n"));
	cr_assert(find_header(r.head, "Date"));
	resp_free(&r);
	cli_close(&c);
	srv_stop(&s);
}

HTTP_TEST(work_fanout_sleep)
{
	struct srv s = { 0 };
	struct cli c;
	weft_stats_t st0, st1;

	srv_start(&s, backend, NULL);
	cli_open(&c, s.port);

	double t0 = t_now();
	get_expect(&c, "/work?us=20000", 200, "work us=20000\n");
	double dt = t_now() - t0;
	cr_assert_geq(dt, 0.010, "/work?us=20000 took %.1f ms: burn not calibrated", dt * 1e3);
	get_expect(&c, "/work?us=0", 200, "work us=0\n");

	weft_stats_get(s.rt, &st0, NULL, 0);
	get_expect(&c, "/fanout?tasks=8&us=500", 200, "fanout tasks=8 us=500\n");
	weft_stats_get(s.rt, &st1, NULL, 0);
#ifndef WEFT_NO_STATS
	cr_assert_geq(st1.spawns - st0.spawns, 8, "fanout spawned %llu tasks",
	              (unsigned long long)(st1.spawns - st0.spawns));
#endif
	get_expect(&c, "/fanout?tasks=1&us=0", 200, "fanout tasks=1 us=0\n");

	t0 = t_now();
	get_expect(&c, "/sleep?ms=50", 200, "slept ms=50\n");
	dt = t_now() - t0;
	cr_assert_geq(dt, 0.045, "/sleep?ms=50 took %.1f ms", dt * 1e3);
	get_expect(&c, "/sleep?ms=0", 200, "slept ms=0\n");

	/* Bounds: 400, and the connection stays usable. */
	static const char *const bad[] = {
		"/work?us=1000000000000", "/work?us=1000001", "/work?us=abc", "/work", "/work?us=",
		"/work?us=-1",            "/work?us=1e3",     "/work?us=%zz", "/fanout?tasks=0&us=1",
		"/fanout?tasks=257&us=1", "/fanout?tasks=4",  "/fanout?tasks=100&us=100000",
		"/fanout?tasks=2&us=100001", "/sleep?ms=60001", "/sleep", "/sleep?ms=99999999999999999999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		get_expect(&c, bad[i], 400, NULL);
	get_expect(&c, "/work?us=%31%30", 200, "work us=10\n"); /* percent-decoded */
	get_expect(&c, "/", 200, "Hello, World!");
	cli_close(&c);
	srv_stop(&s);
}

HTTP_TEST(not_found_and_methods)
{
	struct srv s = { 0 };
	struct cli c;
	struct resp r;

	srv_start(&s, backend, NULL);
	cli_open(&c, s.port);
	get_expect(&c, "/nope", 404, NULL);
	get_expect(&c, "/work/extra", 404, NULL);
	get_expect(&c, "/index.html", 404, NULL);
	get_expect(&c, "//", 404, NULL);

	/* A body is read past: the next request on the connection works. */
	cli_send(&c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.head, "Allow: GET, HEAD\r\n"));
	resp_free(&r);
	get_expect(&c, "/", 200, "Hello, World!");
	cli_send(&c, "POST /nowhere HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "3\r\nabc\r\n0\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 404);
	resp_free(&r);
	get_expect(&c, "/", 200, "Hello, World!");
	cli_close(&c);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

HTTP_TEST(keep_alive)
{
	struct srv s = { 0 };
	struct cli c;
	size_t n = t_size(300, 60);

	srv_start(&s, backend, NULL);
	cli_open(&c, s.port);
	for (size_t i = 0; i < n; i++) {
		switch (i % 5) {
		case 0: get_expect(&c, "/", 200, "Hello, World!"); break;
		case 1: get_expect(&c, "/work?us=10", 200, "work us=10\n"); break;
		case 2: get_expect(&c, "/sleep?ms=1", 200, "slept ms=1\n"); break;
		case 3: get_expect(&c, "/fanout?tasks=3&us=10", 200, "fanout tasks=3 us=10\n"); break;
		case 4: get_expect(&c, "/missing", 404, NULL); break;
		}
	}
	cr_assert_eq(srv_stats(&s).accepted, 1, "keep-alive: %llu connections",
	             (unsigned long long)srv_stats(&s).accepted);
	cli_close(&c);
	srv_wait_active(&s, 0);
	cr_assert_eq(srv_stats(&s).requests, n);
	srv_stop(&s);
}

HTTP_TEST(http10_and_close)
{
	struct srv s = { 0 };
	struct cli c;
	struct resp r;

	srv_start(&s, backend, NULL);
	/* HTTP/1.0: closed after the answer. */
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.0\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(r.conn_close);
	cr_assert_str_eq(r.body, "Hello, World!");
	resp_free(&r);
	cli_expect_eof(&c);
	cli_close(&c);

	/* HTTP/1.0 keep-alive: stays open, says so. */
	cli_open(&c, s.port);
	for (int i = 0; i < 3; i++) {
		cli_send(&c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
		cr_assert_eq(cli_resp(&c, &r, false), 0);
		cr_assert_eq(r.status, 200);
		cr_assert(r.conn_keepalive);
		resp_free(&r);
	}
	cli_close(&c);

	/* HTTP/1.1 Connection: close, with a request pipelined behind it
	 * that must not be answered. */
	cli_open(&c, s.port);
	cli_send(&c, "GET /sleep?ms=5 HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(r.conn_close);
	resp_free(&r);
	cli_expect_eof(&c);
	cli_close(&c);

	/* Upgrades are not supported: answered as plain requests, then
	 * closed; CONNECT's authority is no route. */
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(r.conn_close);
	resp_free(&r);
	cli_expect_eof(&c);
	cli_close(&c);
	cli_open(&c, s.port);
	cli_send(&c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 404);
	cr_assert(r.conn_close);
	resp_free(&r);
	cli_expect_eof(&c);
	cli_close(&c);
	srv_stop(&s);
}

HTTP_TEST(pipelining)
{
	struct srv s = { 0 };
	struct cli c;
	struct resp r;
	static const struct {
		const char *method, *path;
		int status;
		const char *body;
	} reqs[] = {
		{ "GET", "/", 200, "Hello, World!" },
		{ "GET", "/sleep?ms=20", 200, "slept ms=20\n" },
		{ "GET", "/work?us=100", 200, "work us=100\n" },
		{ "GET", "/missing", 404, NULL },
		{ "GET", "/fanout?tasks=4&us=50", 200, "fanout tasks=4 us=50\n" },
		{ "HEAD", "/", 200, NULL },
		{ "GET", "/file?path=hello.txt", 200, "hello file\n" },
		{ "GET", "/work?us=bad", 400, NULL },
		{ "GET", "/sleep?ms=1", 200, "slept ms=1\n" },
		{ "GET", "/", 200, "Hello, World!" },
	};
	size_t nreq = sizeof reqs / sizeof reqs[0];
	char *all = malloc(65536);
	size_t len = 0;

	cr_assert_not_null(all);

	srv_start(&s, backend, NULL);
	cli_open(&c, s.port);
	/* Several requests in one write, answered in order. */
	for (int round = 0; round < 3; round++) {
		len = 0;
		for (size_t i = 0; i < nreq; i++)
			len += (size_t)sprintf(all + len, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", reqs[i].method,
			                       reqs[i].path);
		send_all(c.fd, all, len);
		for (size_t i = 0; i < nreq; i++) {
			bool head = !strcmp(reqs[i].method, "HEAD");
			cr_assert_eq(cli_resp(&c, &r, head), 0, "pipelined answer %zu missing", i);
			cr_assert_eq(r.status, reqs[i].status, "answer %zu (%s): status %d", i, reqs[i].path,
			             r.status);
			if (reqs[i].body)
				cr_assert_str_eq(r.body, reqs[i].body, "answer %zu", i);
			resp_free(&r);
		}
	}

	/* Many small requests: more than one read's worth, so requests are
	 * cut at read boundaries. */
	size_t many = t_size(2000, 300);
	char *big = malloc(many * 40);
	cr_assert_not_null(big);
	len = 0;
	for (size_t i = 0; i < many; i++)
		len += (size_t)sprintf(big + len, "GET /?%zu HTTP/1.1\r\nHost: t\r\n\r\n", i);
	send_all(c.fd, big, len);
	for (size_t i = 0; i < many; i++) {
		cr_assert_eq(cli_resp(&c, &r, false), 0, "answer %zu of %zu missing", i, many);
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.body, "Hello, World!");
		resp_free(&r);
	}
	free(big);

	/* One request a byte at a time. */
	const char *slow = "GET /work?us=5 HTTP/1.1\r\nHost: t\r\nX-Long: abcdefghijkl\r\n\r\n";
	for (const char *p = slow; *p; p++) {
		send_all(c.fd, p, 1);
		t_sleep_us(200);
	}
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "work us=5\n");
	resp_free(&r);
	free(all);
	cli_close(&c);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Bad requests                                                         */

HTTP_TEST(bad_request)
{
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
		"GET / HTTP/1.1\r\nBadHeaderWithoutColon\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / XTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
	};
	struct srv s = { 0 };
	struct cli c, other;
	struct resp r;
	size_t n = sizeof bad / sizeof bad[0];

	srv_start(&s, backend, NULL);
	cli_open(&other, s.port); /* undisturbed by the others' errors */
	get_expect(&other, "/", 200, "Hello, World!");
	for (size_t i = 0; i < n; i++) {
		cli_open(&c, s.port);
		cli_send(&c, bad[i]);
		expect_error_close(&c, 400, bad[i]);
		cli_close(&c);
		get_expect(&other, "/", 200, "Hello, World!");
	}
	/* Good requests pipelined ahead of a bad one are answered first. */
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\nGARBAGE\r\n\r\nGET / HTTP/1.1\r\n\r\n");
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 404);
	resp_free(&r);
	expect_error_close(&c, 400, "pipelined garbage");
	cli_close(&c);
	get_expect(&other, "/", 200, "Hello, World!");
	cli_close(&other);
	srv_wait_active(&s, 0);
	cr_assert_eq(srv_stats(&s).bad_requests, n + 1);
	srv_stop(&s);
}

HTTP_TEST(header_too_large)
{
	struct srv s = { 0 };
	struct httpd_config cfg;
	struct cli c;
	char *req = malloc(1 << 17);
	size_t len;

	cr_assert_not_null(req);
	httpd_config_init(&cfg);
	cfg.header_limit = 1024;
	srv_start(&s, backend, &cfg);

	/* Just under the limit: served. */
	cli_open(&c, s.port);
	len = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\nX-Fill: ");
	memset(req + len, 'a', 900);
	len += 900;
	len += (size_t)sprintf(req + len, "\r\n\r\n");
	cr_assert_lt(len, 1024);
	send_all(c.fd, req, len);
	struct resp r;
	cr_assert_eq(cli_resp(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cli_close(&c);

	/* One long header, in one write. */
	cli_open(&c, s.port);
	len = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\nX-Fill: ");
	memset(req + len, 'b', 2000);
	len += 2000;
	len += (size_t)sprintf(req + len, "\r\n\r\n");
	send_all(c.fd, req, len);
	expect_error_close(&c, 431, "long header");
	cli_close(&c);

	/* Many short headers. */
	cli_open(&c, s.port);
	len = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 200; i++)
		len += (size_t)sprintf(req + len, "X-H%d: v\r\n", i);
	len += (size_t)sprintf(req + len, "\r\n");
	send_all(c.fd, req, len);
	expect_error_close(&c, 431, "many headers");
	cli_close(&c);

	/* A long URL. */
	cli_open(&c, s.port);
	len = (size_t)sprintf(req, "GET /?");
	memset(req + len, 'u', 3000);
	len += 3000;
	len += (size_t)sprintf(req + len, " HTTP/1.1\r\n\r\n");
	send_all(c.fd, req, len);
	expect_error_close(&c, 431, "long URL");
	cli_close(&c);

	/* A head that grows over several reads, never complete. */
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.1\r\nHost: t\r\n");
	for (int i = 0; i < 30; i++) {
		char line[64];
		sprintf(line, "X-Part-%02d: 0123456789012345678901234567890123456789\r\n", i);
		if (send(c.fd, line, strlen(line), MSG_NOSIGNAL) < 0)
			break; /* the server may have answered and closed already */
		t_sleep_ms(2);
	}
	expect_error_close(&c, 431, "head over several reads");
	cli_close(&c);

	/* Far over the limit (64 KiB): answered without reading it all. */
	cli_open(&c, s.port);
	len = (size_t)sprintf(req, "GET / HTTP/1.1\r\nX-Huge: ");
	memset(req + len, 'h', 65536);
	len += 65536;
	len += (size_t)sprintf(req + len, "\r\n\r\n");
	send_all(c.fd, req, len);
	expect_error_close(&c, 431, "64 KiB header");
	cli_close(&c);

	srv_wait_active(&s, 0);
	cr_assert_eq(srv_stats(&s).too_large, 5);
	free(req);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Stalls, resets                                                       */

HTTP_TEST(stalled_client)
{
	struct srv s = { 0 };
	struct httpd_config cfg;
	struct cli stall, idle, trickle, other;
	struct resp r;

	httpd_config_init(&cfg);
	cfg.idle_timeout_ms = 600;
	srv_start(&s, backend, &cfg);

	/* Mid-request stall: 408, then closed. */
	double t0 = t_now();
	cli_open(&stall, s.port);
	cli_send(&stall, "GET / HTTP/1.1\r\nHost: t\r\nX-Stall");
	/* Others are served meanwhile. */
	cli_open(&other, s.port);
	for (int i = 0; i < 5; i++)
		get_expect(&other, "/", 200, "Hello, World!");
	cr_assert_lt(t_now() - t0, 0.5, "a stalled client held others up");
	/* An idle keep-alive connection: closed without an answer. */
	cli_open(&idle, s.port);
	get_expect(&idle, "/", 200, "Hello, World!");
	double t_idle = t_now();
	/* A trickle: a byte every 50 ms (each read well within the timeout)
	 * never completes the head: the head's deadline ends it. */
	cli_open(&trickle, s.port);
	double t_trickle = t_now();
	const char *tr = "GET / HTTP/1.1\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	for (const char *p = tr; *p; p++) {
		if (send(trickle.fd, p, 1, MSG_NOSIGNAL) < 0)
			break;
		struct pollfd pfd = { trickle.fd, POLLIN, 0 };
		if (poll(&pfd, 1, 50) > 0)
			break; /* the server answered */
	}

	cr_assert_eq(cli_resp(&stall, &r, false), 0, "stalled client: no 408");
	cr_assert_eq(r.status, 408);
	cr_assert(r.conn_close);
	resp_free(&r);
	cli_expect_eof(&stall);
	double dt = t_now() - t0;
	cr_assert(dt >= 0.55 && dt < 3.0, "stalled client closed after %.0f ms (timeout 600)", dt * 1e3);

	cli_expect_eof(&idle);
	dt = t_now() - t_idle;
	cr_assert(dt >= 0.55 && dt < 3.0, "idle client closed after %.0f ms (timeout 600)", dt * 1e3);

	cr_assert_eq(cli_resp(&trickle, &r, false), 0, "trickling client: no 408");
	cr_assert_eq(r.status, 408);
	resp_free(&r);
	cli_expect_eof(&trickle);
	dt = t_now() - t_trickle;
	cr_assert(dt < 2.0, "trickling client lasted %.0f ms (head deadline 600)", dt * 1e3);

	/* other was idle for more than the timeout too: closed; a new one
	 * is served. */
	cli_expect_eof(&other);
	cli_close(&other);
	cli_open(&other, s.port);
	get_expect(&other, "/", 200, "Hello, World!");
	cli_close(&stall);
	cli_close(&idle);
	cli_close(&trickle);
	cli_close(&other);
	srv_wait_active(&s, 0);
	cr_assert_geq(srv_stats(&s).timeouts, 3);
	srv_stop(&s);
}

HTTP_TEST(client_reset)
{
	struct srv s = { 0 };
	struct cli c, other;

	srv_start(&s, backend, NULL);
	cli_open(&other, s.port);
	get_expect(&other, "/", 200, "Hello, World!");

	/* Reset mid-request. */
	for (int i = 0; i < 5; i++) {
		cli_open(&c, s.port);
		cli_send(&c, "GET /work?us=1 HTTP/1.1\r\nHost: t\r\nX-Half");
		t_sleep_ms(5);
		cli_reset(&c);
		get_expect(&other, "/", 200, "Hello, World!");
	}
	/* Reset while the server sleeps on the request. */
	cli_open(&c, s.port);
	cli_send(&c, "GET /sleep?ms=100 HTTP/1.1\r\n\r\n");
	t_sleep_ms(10);
	cli_reset(&c);
	/* Reset while the server sends 1 MiB the client does not read. */
	cli_open(&c, s.port);
	int small = 4096;
	setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	cli_send(&c, "GET /file?path=big.bin HTTP/1.1\r\n\r\nGET /file?path=big.bin HTTP/1.1\r\n\r\n");
	t_sleep_ms(50);
	cli_reset(&c);

	get_expect(&other, "/", 200, "Hello, World!");
	srv_wait_active(&s, 1); /* only `other` left */
	get_expect(&other, "/sleep?ms=1", 200, "slept ms=1\n");
	cli_close(&other);
	srv_wait_active(&s, 0);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ */
/* Many connections                                                     */

/* Raise the soft descriptor limit to the hard one; the resulting limit. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

HTTP_TEST(concurrent_1000)
{
	size_t n = t_size(1000, 250);
	rlim_t lim = raise_nofile();
	if (lim < 2 * n + 100) {
		cr_skip("RLIMIT_NOFILE %llu: %zu connections need about %zu descriptors", (unsigned long long)lim,
		        n, 2 * n + 100);
		return;
	}
	struct srv s = { 0 };
	struct cli *cs = calloc(n, sizeof *cs);
	struct resp r;
	char req[256];

	srv_start(&s, backend, NULL);
	double t0 = t_now();
	for (size_t i = 0; i < n; i++)
		cli_open(&cs[i], s.port);
	/* All requests out before any answer is read: sleepers hold their
	 * connections open concurrently. */
	for (size_t i = 0; i < n; i++) {
		if (i % 2)
			req_get(req, sizeof req, "GET", "/sleep?ms=100");
		else
			pathf(req, sizeof req, "GET /?c=%zu HTTP/1.1\r\nHost: t\r\n\r\n", i);
		cli_send(&cs[i], req);
	}
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(cli_resp(&cs[i], &r, false), 0, "connection %zu: no answer", i);
		cr_assert_eq(r.status, 200, "connection %zu: status %d", i, r.status);
		cr_assert_str_eq(r.body, i % 2 ? "slept ms=100\n" : "Hello, World!");
		resp_free(&r);
	}
	double dt = t_now() - t0;
	/* n/2 sleeps of 100 ms one after the other would take n/20 s. */
	cr_assert_lt(dt, (double)n / 20 / 2, "%zu connections took %.2f s: sleeps not concurrent", n, dt);
	srv_wait_active(&s, n);
	cr_assert_eq(srv_stats(&s).accepted, n);
	/* A second round on the same connections. */
	for (size_t i = 0; i < n; i++)
		cli_send(&cs[i], req_get(req, sizeof req, "GET", "/"));
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(cli_resp(&cs[i], &r, false), 0, "connection %zu: no second answer", i);
		cr_assert_eq(r.status, 200);
		resp_free(&r);
	}
	for (size_t i = 0; i < n; i++)
		cli_close(&cs[i]);
	srv_wait_active(&s, 0);
	free(cs);
	srv_stop(&s);
}

/* Out of descriptors: the server backs off and keeps serving, and accepts
 * again once descriptors are free. */
HTTP_TEST(accept_emfile)
{
	enum { NC = 6 };
	struct srv s = { 0 };
	struct cli cs[NC];
	struct resp r;
	struct rlimit saved;
	static struct t_fd_fill fill;
	struct sockaddr_in a;

	/* The limit is lowered before the server starts: io_uring's
	 * multishot accept keeps the limit it was started under. */
	int lim_rc = t_fd_limit_low(&saved, 256);
	cr_assert_eq(lim_rc, 0, "setrlimit: %s", strerror(lim_rc));
	srv_start(&s, backend, NULL);
	/* Sockets first, so that only the server needs new descriptors. */
	for (int i = 0; i < NC; i++) {
		memset(&cs[i], 0, sizeof cs[i]);
		cs[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(cs[i].fd >= 0);
		struct timeval tv = { CLI_TIMEOUT_S, 0 };
		setsockopt(cs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	/* Every free descriptor taken but two, for the server. */
	t_fd_fill(&fill, 2);
	cr_assert_eq(fill.err, EMFILE, "filling the descriptor table: %s", strerror(fill.err));

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)s.port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < NC; i++) {
		cr_assert_eq(connect(cs[i].fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
		cli_send(&cs[i], "GET / HTTP/1.1\r\n\r\n");
	}
	/* Two are served; the rest wait in the backlog while accept backs off. */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(cli_resp(&cs[i], &r, false), 0, "connection %d: no answer", i);
		cr_assert_eq(r.status, 200);
		resp_free(&r);
	}
	double t0 = t_now();
	while (srv_stats(&s).accept_backoffs == 0 && t_now() - t0 < 5)
		t_sleep_ms(2);
	cr_assert_geq(srv_stats(&s).accept_backoffs, 1, "accept never hit EMFILE");
	/* The served connections keep working meanwhile. */
	cli_send(&cs[0], "GET /sleep?ms=1 HTTP/1.1\r\n\r\n");
	cr_assert_eq(cli_resp(&cs[0], &r, false), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);

	t_fd_unfill(&fill);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	for (int i = 2; i < NC; i++) {
		cr_assert_eq(cli_resp(&cs[i], &r, false), 0, "connection %d: no answer after descriptors freed", i);
		cr_assert_eq(r.status, 200);
		resp_free(&r);
	}
	for (int i = 0; i < NC; i++)
		cli_close(&cs[i]);
	srv_wait_active(&s, 0);
	srv_stop(&s);
}

/* ------------------------------------------------------------------ */
/* /file                                                                */

static void file_route(int backend, int no_openat2)
{
	struct srv s = { 0 };
	struct httpd_config cfg;
	struct cli c;
	struct resp r;
	char req[512];

	httpd_config_init(&cfg);
	cfg.no_openat2 = no_openat2;
	srv_start(&s, backend, &cfg);
	cli_open(&c, s.port);

	get_expect(&c, "/file?path=hello.txt", 200, "hello file\n");
	get_expect(&c, "/file?path=hello.txt&bytes=5", 200, "hello");
	get_expect(&c, "/file?bytes=0&path=hello.txt", 200, "");
	get_expect(&c, "/file?path=hello.txt&bytes=1000", 200, "hello file\n");
	get_expect(&c, "/file?path=in_link", 200, "hello file\n");
	get_expect(&c, "/file?path=./hello.txt", 200, "hello file\n");
	get_expect(&c, "/file?path=sub%2Fdata.bin&bytes=0", 200, "");

	/* Whole files, checked byte for byte. */
	static const struct {
		const char *path;
		size_t len;
	} whole[] = { { "sub/data.bin", DATA_BYTES }, { "big.bin", BIG_BYTES }, { "big.bin&bytes=4097", 4097 } };
	for (size_t k = 0; k < sizeof whole / sizeof whole[0]; k++) {
		pathf(req, sizeof req, "GET /file?path=%s HTTP/1.1\r\n\r\n", whole[k].path);
		cli_send(&c, req);
		cr_assert_eq(cli_resp(&c, &r, false), 0);
		cr_assert_eq(r.status, 200);
		cr_assert_eq(r.clen, whole[k].len, "%s: %zu bytes", whole[k].path, r.clen);
		for (size_t i = 0; i < whole[k].len; i++)
			if ((unsigned char)r.body[i] != pattern_byte(i))
				cr_assert_fail("%s: byte %zu differs", whole[k].path, i);
		resp_free(&r);
	}

	/* Refused: outside the root by any route. */
	static const char *const refused[] = {
		"../outside/secret.txt", "..%2Foutside%2Fsecret.txt", "%2e%2e/outside/secret.txt",
		"sub/../hello.txt",      "sub/..",                    "..",
		"/etc/passwd",           "%2Fetc%2Fpasswd",           "out_link",
		"out_dir/secret.txt",    "abs_link",                  "hello.txt%00.png",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		pathf(req, sizeof req, "/file?path=%s", refused[i]);
		get_expect(&c, req, 403, NULL);
	}
	/* Not there, not a regular file: 404 (a FIFO must not block). */
	get_expect(&c, "/file?path=nope.txt", 404, NULL);
	get_expect(&c, "/file?path=sub", 404, NULL);
	get_expect(&c, "/file?path=fifo", 404, NULL);
	get_expect(&c, "/file?path=hello.txt/x", 404, NULL);
	/* Bad parameters: 400. */
	get_expect(&c, "/file", 400, NULL);
	get_expect(&c, "/file?path=", 400, NULL);
	get_expect(&c, "/file?path=big.bin&bytes=1048577", 400, NULL);
	get_expect(&c, "/file?path=big.bin&bytes=x", 400, NULL);
	get_expect(&c, "/file?path=%G1", 400, NULL);
	get_expect(&c, "/", 200, "Hello, World!");
	cli_close(&c);

	/* A server without a root: /file is 404. */
	struct httpd *h2;
	httpd_config_init(&cfg);
	cfg.host = "127.0.0.1";
	int port2 = httpd_start(s.rt, &cfg, &h2);
	cr_assert(port2 > 0);
	cli_open(&c, port2);
	get_expect(&c, "/file?path=hello.txt", 404, NULL);
	cli_close(&c);
	cr_assert_eq(httpd_stop(h2), 0);
	srv_stop(&s);
}

HTTP_TEST(file_openat2)
{
	file_route(backend, 0);
}

HTTP_TEST(file_realpath_fallback)
{
	file_route(backend, 1);
}

/* ------------------------------------------------------------------ */
/* Stop, descriptors                                                    */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own */
}

HTTP_TEST(fd_leak_and_stop)
{
	struct srv s = { 0 };
	struct httpd_config cfg;
	struct cli c, idle, sleeper, half;
	struct resp r;
	struct tree tree;

	tree_make(&tree);
	s.rt = rt_make(backend, 2);
	t_sleep_ms(20); /* workers up, their event state made */
	int before = count_fds();

	httpd_config_init(&cfg);
	cfg.root = tree.root;
	cfg.header_limit = 512;
	cfg.idle_timeout_ms = 200;
	srv_start(&s, backend, &cfg);

	/* Every way a connection can end. */
	cli_open(&c, s.port);
	get_expect(&c, "/", 200, "Hello, World!");
	get_expect(&c, "/file?path=hello.txt", 200, "hello file\n");
	get_expect(&c, "/file?path=out_link", 403, NULL);
	get_expect(&c, "/file?path=fifo", 404, NULL);
	get_expect(&c, "/nope", 404, NULL);
	cli_close(&c);
	cli_open(&c, s.port);
	cli_send(&c, "BAD\r\n\r\n");
	expect_error_close(&c, 400, "bad");
	cli_close(&c);
	cli_open(&c, s.port);
	char big[1024];
	memset(big, 'x', sizeof big);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	send_all(c.fd, big, sizeof big);
	expect_error_close(&c, 431, "large");
	cli_close(&c);
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.1\r\n");
	expect_error_close(&c, 408, "stalled");
	cli_close(&c);
	cli_open(&c, s.port);
	cli_send(&c, "GET / HTTP/1.1\r\n");
	cli_reset(&c);

	/* Connections still open when the server stops: idle, sleeping
	 * (10 s, far longer than the stop may take), half a request. */
	cli_open(&idle, s.port);
	get_expect(&idle, "/", 200, "Hello, World!");
	cli_open(&sleeper, s.port);
	cli_send(&sleeper, "GET /sleep?ms=10000 HTTP/1.1\r\n\r\n");
	cli_open(&half, s.port);
	cli_send(&half, "GET / HT");
	t_sleep_ms(30);

	double t0 = t_now();
	cr_assert_eq(httpd_stop(s.h), 0);
	s.h = NULL;
	double dt = t_now() - t0;
	cr_assert_lt(dt, 2.0, "httpd_stop took %.2f s", dt);
	cr_assert_lt(cli_resp(&sleeper, &r, false), 0, "the sleeper got an answer after stop");
	cli_expect_eof(&idle);
	cli_close(&idle);
	cli_close(&sleeper);
	cli_close(&half);

	int after = count_fds();
	cr_assert_eq(after, before, "descriptors: %d before the server, %d after", before, after);

	/* Stop right after start, with nothing ever connected. */
	srv_start(&s, backend, &cfg);
	cr_assert_eq(httpd_stop(s.h), 0);
	s.h = NULL;
	cr_assert_eq(count_fds(), before);

	/* Bad configurations are refused without leaking. */
	struct httpd *h;
	httpd_config_init(&cfg);
	cfg.header_limit = 10;
	cr_assert_eq(httpd_start(s.rt, &cfg, &h), -EINVAL);
	httpd_config_init(&cfg);
	cfg.root = "/nonexistent/weft-httpd-root";
	cr_assert_eq(httpd_start(s.rt, &cfg, &h), -ENOENT);
	/* A port already taken. */
	int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(taken, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(taken, 1), 0);
	cr_assert_eq(getsockname(taken, (struct sockaddr *)&a, &alen), 0);
	httpd_config_init(&cfg);
	cfg.host = "127.0.0.1";
	cfg.port = ntohs(a.sin_port);
	cr_assert_eq(httpd_start(s.rt, &cfg, &h), -EADDRINUSE);
	close(taken);
	cr_assert_eq(count_fds(), before);

	srv_stop(&s);
	tree_remove(&tree);
}
