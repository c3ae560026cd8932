/*
 * httpd.c: weft-httpd's server core (see httpd.h for the routes and the
 * model).
 *
 * Parser.  Requests are parsed with llhttp (8.x), the parser Node.js uses,
 * compiled from the C sources Debian's node-llhttp ships (tools/llhttp_*.c).
 * We chose it over http-parser (libhttp-parser-dev) because http-parser is
 * no longer maintained (its README sends new users to llhttp) while llhttp
 * is, is stricter by default (request smuggling: conflicting
 * Content-Length/Transfer-Encoding, bare LF, ... are errors unless a
 * lenient flag is set), and can pause in a callback (HPE_PAUSED), which is
 * exactly what pipelining needs: the parser stops after each complete
 * request, we answer it, and resume on the rest of the buffer.  It is
 * incremental, so a request split over several reads is parsed as it comes
 * and only the URL is copied out.
 *
 * Connection fiber, in a loop: recv (with a timeout) into a 16 KiB buffer;
 * feed it to the parser, which pauses after each complete request; answer
 * each into c->out; send c->out in one go when the buffer is used up (and
 * before a request that takes time, so earlier answers are not held back).
 * Errors that end the connection (400, 431, 408, Connection: close) are
 * sent, then the write side is shut and what the client still sends is
 * read and dropped for a short while ("lingering close", as nginx does), so
 * that the kernel does not answer unread data with a reset that could
 * destroy the answer before the client reads it.
 *
 * Head size.  llhttp has no limit of its own: we count the bytes of the
 * current request head (the span callbacks know where they end; what a read
 * leaves unfinished is added when the parser runs out of input) and stop
 * with 431 as soon as the count passes header_limit.
 *
 * Stopping (httpd_stop).  httpd_stop sets a flag, then shutdown()s the
 * listener and every connection's socket (under the server lock; a
 * connection leaves the list before its fd is closed, so the number cannot
 * have been reused): an accept, recv or send in progress or started later
 * then ends at once (-EINVAL, 0, -EPIPE) on both backends, and the fibers
 * return.  /sleep waits with a POLL on its socket (timeout = the sleep), so
 * the shutdown ends it too, as does the client's reset.  No operation is
 * cancelled with weft_op_cancel from httpd_stop's thread: a remote cancel
 * is handled later by the op's owner worker, which then reads the
 * weft_op_t, and ours live on fiber stacks that are gone by then.
 *
 * Fibers and thread-locals.  A fiber may resume on another thread after
 * any weft I/O call, so code that reads errno or a thread-local lives in
 * small noinline functions that do not suspend (weft.h).
 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#if defined(SYS_openat2)
#define HTTPD_HAVE_OPENAT2 1
#endif
#endif
#endif

#define NOINLINE __attribute__((noinline))

/* Bytes read per recv; also what one batch of pipelined requests is. */
#define CONN_IN_BUF 16384
/* Answers collected before they are sent even in the middle of a batch. */
#define OUT_FLUSH 65536
/* An out buffer grown past this is given back after a flush. */
#define OUT_KEEP (256 * 1024)
/* Lingering close: at most this long, this many bytes. */
#define LINGER_MS 1000u
#define LINGER_BYTES (256 * 1024)
/* Accept failed for lack of descriptors or memory: wait this long. */
#define ACCEPT_BACKOFF_NS (10 * 1000 * 1000ull)
/* /sleep's slices once its socket can no longer wake it (see conn_sleep). */
#define SLEEP_SLICE_NS (50 * 1000 * 1000ull)

struct conn;

struct httpd {
	weft_runtime_t *rt;
	struct httpd_config cfg;
	char *root;          /* cfg.root, realpath'ed; NULL without one */
	int rootfd;          /* O_PATH|O_DIRECTORY of root, or -1 */
	int lfd;
	int port;
	uint64_t idle_ns;
	llhttp_settings_t settings;

	pthread_mutex_t lock; /* guards live and conns */
	pthread_cond_t cv;    /* live reached 0 */
	unsigned live;        /* the acceptor + connection fibers */
	struct conn *conns;   /* doubly linked */
	atomic_bool stopping; /* set (under lock) by httpd_stop */

	_Atomic uint64_t st_accepted, st_active, st_requests, st_bad, st_large,
		st_timeouts, st_io_errors, st_backoffs;

	weft_op_t accept_op;  /* ACCEPT_MULTI on lfd: the acceptor */
	weft_op_t backoff_op; /* SLEEP before accepting again (EMFILE, ...) */
};

struct conn {
	struct httpd *h;
	struct conn *prev, *next; /* h->conns, under h->lock */
	int fd;

	llhttp_t parser;
	/* The request being parsed. */
	bool in_msg;          /* between message begin and complete */
	bool headers_done;
	bool too_large;       /* head over the limit: 431 */
	bool keep_alive;      /* of the request just completed */
	uint64_t deadline;    /* the head (and body) must be in by then */
	size_t head_used;     /* head bytes in earlier reads */
	const char *exec_base; /* where the running llhttp_execute started */
	const char *msg_base; /* where the current message's bytes in this read start */
	char *url;            /* header_limit bytes */
	size_t url_len;

	char *out;            /* answers not yet sent */
	size_t out_len, out_cap;
	bool out_failed;      /* no memory for an answer: close */

	uint64_t requests;
	char in[CONN_IN_BUF];
};

/* ------------------------------------------------------------------------ */
/* Time, CPU burning                                                          */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A dependent chain the compiler can neither vectorise nor fold. */
static NOINLINE uint64_t burn_loop(uint64_t iters)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static double burn_per_us; /* loop iterations per microsecond */
static pthread_once_t burn_once = PTHREAD_ONCE_INIT;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Measured in the thread's CPU time, so that time spent preempted (a busy
 * machine) does not count; best of a few runs of at least 2 ms each.
 * About 10-30 ms of CPU at start. */
static void burn_calibrate(void)
{
	double best = 0;
	for (int run = 0; run < 5; run++) {
		uint64_t iters = 1u << 14;
		for (;;) {
			uint64_t t0 = thread_cpu_ns();
			burn_loop(iters);
			uint64_t dt = thread_cpu_ns() - t0;
			if (dt >= 2000000 || iters >= (1ull << 36)) {
				double rate = (double)iters / ((double)dt / 1000.0);
				if (rate > best)
					best = rate;
				break;
			}
			iters *= 2;
		}
	}
	burn_per_us = best > 0 ? best : 100.0;
}

double httpd_burn_rate(void)
{
	pthread_once(&burn_once, burn_calibrate);
	return burn_per_us;
}

void httpd_burn_us(uint64_t us)
{
	if (us)
		burn_loop((uint64_t)((double)us * httpd_burn_rate()));
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                    */

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	default: return "Unknown";
	}
}

/* The Date header's value, cached per thread for the current second.
 * noinline: reads a thread-local and must not be merged into a caller that
 * suspends (see the top). */
static NOINLINE size_t http_date(char *dst)
{
	static __thread time_t cached_sec = -1;
	static __thread char cached[40];
	static __thread size_t cached_len;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != cached_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		cached_len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		cached_sec = ts.tv_sec;
	}
	memcpy(dst, cached, cached_len);
	return cached_len;
}

static bool out_reserve(struct conn *c, size_t more)
{
	if (c->out_cap - c->out_len >= more)
		return true;
	size_t cap = c->out_cap ? c->out_cap : 4096;
	while (cap - c->out_len < more)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (!p) {
		c->out_failed = true;
		return false;
	}
	c->out = p;
	c->out_cap = cap;
	return true;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

enum { CONN_KEEP = 0, CONN_CLOSE = 1, CONN_KA10 = 2 /* HTTP/1.0 keep-alive */ };

/* Append one answer to c->out. */
static void respond(struct conn *c, int status, const char *ctype, const void *body, size_t blen,
                    bool head_only, int conn_hdr, const char *extra)
{
	const char *st = status_text(status);
	size_t extra_len = extra ? strlen(extra) : 0;
	size_t need = 256 + strlen(st) + strlen(ctype) + extra_len + (head_only ? 0 : blen);
	if (!out_reserve(c, need))
		return;
	char *p = c->out + c->out_len;
	p = PUTS(p, "HTTP/1.1 ");
	p = put_u64(p, (uint64_t)status);
	*p++ = ' ';
	p = put(p, st, strlen(st));
	p = PUTS(p, "\r\nServer: weft-httpd\r\nDate: ");
	p += http_date(p);
	p = PUTS(p, "\r\nContent-Type: ");
	p = put(p, ctype, strlen(ctype));
	p = PUTS(p, "\r\nContent-Length: ");
	p = put_u64(p, blen);
	if (conn_hdr == CONN_CLOSE)
		p = PUTS(p, "\r\nConnection: close");
	else if (conn_hdr == CONN_KA10)
		p = PUTS(p, "\r\nConnection: keep-alive");
	p = PUTS(p, "\r\n");
	if (extra_len)
		p = put(p, extra, extra_len);
	p = PUTS(p, "\r\n");
	if (!head_only && blen)
		p = put(p, body, blen);
	c->out_len = (size_t)(p - c->out);
}

static void respond_text(struct conn *c, int status, const char *text, bool head_only, int conn_hdr)
{
	respond(c, status, "text/plain", text, strlen(text), head_only, conn_hdr, NULL);
}

/* ------------------------------------------------------------------------ */
/* Socket operations (httpd_stop ends them with shutdown, see the top)        */

static bool stopping(const struct httpd *h)
{
	return atomic_load_explicit(&h->stopping, memory_order_relaxed);
}

static ssize_t conn_recv(struct conn *c, void *buf, size_t len, uint64_t timeout_ns)
{
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_RECV;
	op.fd = c->fd;
	op.buf = buf;
	op.len = len;
	op.timeout_ns = timeout_ns;
	return weft_op_run(&op);
}

static int conn_send_all(struct conn *c, const char *buf, size_t len)
{
	while (len) {
		weft_op_t op;
		memset(&op, 0, sizeof op);
		op.opcode = WEFT_OP_SEND;
		op.fd = c->fd;
		op.buf = (void *)(uintptr_t)buf;
		op.len = len;
		op.timeout_ns = c->h->idle_ns;
		ssize_t r = weft_op_run(&op);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EPIPE;
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

/*
 * /sleep: wait ns on a weft timer, as the timeout of a POLL on the
 * connection's socket for POLLRDHUP (never for POLLIN: pipelined requests
 * must not wake it).  So the wait also ends when the socket dies: reset by
 * the client, or shut down by httpd_stop (POLLHUP/POLLERR); then -ECONNRESET
 * and the connection is closed.  A client that only half-closed (POLLRDHUP)
 * still gets its answer: the rest is slept in slices that watch the stop
 * flag.  0 or a negative errno.
 */
static int conn_sleep(struct conn *c, uint64_t ns)
{
	uint64_t deadline = now_ns() + ns;
	weft_op_t op;
	memset(&op, 0, sizeof op);
	op.opcode = WEFT_OP_POLL;
	op.fd = c->fd;
	op.flags = POLLRDHUP;
	op.timeout_ns = ns;
	ssize_t r = weft_op_run(&op);
	if (r == -ETIMEDOUT)
		return 0;
	if (r < 0)
		return (int)r;
	if (r & (POLLERR | POLLHUP | POLLNVAL))
		return -ECONNRESET;
	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return 0;
		if (stopping(c->h))
			return -ECANCELED;
		int rc = weft_sleep(deadline - now < SLEEP_SLICE_NS ? deadline - now : SLEEP_SLICE_NS);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
}

/* Send what c->out holds.  0 or a negative errno. */
static int conn_flush(struct conn *c)
{
	int rc = 0;
	if (c->out_failed)
		return -ENOMEM;
	if (c->out_len)
		rc = conn_send_all(c, c->out, c->out_len);
	c->out_len = 0;
	if (c->out_cap > OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Parser callbacks                                                           */

static bool head_over(struct conn *c, const char *end)
{
	size_t used = c->head_used + (size_t)(end - c->msg_base);
	if (used > c->h->cfg.header_limit) {
		c->too_large = true;
		return true;
	}
	return false;
}

static int on_message_begin(llhttp_t *p)
{
	struct conn *c = p->data;
	c->in_msg = true;
	c->headers_done = false;
	c->too_large = false;
	c->head_used = 0;
	c->msg_base = c->exec_base;
	c->url_len = 0;
	c->deadline = now_ns() + c->h->idle_ns;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (head_over(c, at + len) || len > c->h->cfg.header_limit - c->url_len) {
		c->too_large = true;
		return -1;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	return 0;
}

static int on_header_span(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	return head_over(c, at + len) ? -1 : 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	c->headers_done = true;
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	c->in_msg = false;
	c->keep_alive = llhttp_should_keep_alive(p) != 0;
	return HPE_PAUSED; /* answer it before parsing on */
}

/* ------------------------------------------------------------------------ */
/* Query strings                                                              */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Find key in the query q[0..qlen) and percent-decode its value into val
 * (NUL-terminated).  1 found, 0 absent, -1 malformed or too long. */
static int query_get(const char *q, size_t qlen, const char *key, char *val, size_t vcap, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *end = q + qlen;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(pe - q));
		const char *kend = eq ? eq : pe;
		if ((size_t)(kend - q) == klen && memcmp(q, key, klen) == 0) {
			size_t n = 0;
			for (const char *s = eq ? eq + 1 : pe; s < pe; s++) {
				char ch = *s;
				if (ch == '%') {
					int hi, lo;
					if (pe - s < 3 || (hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0)
						return -1;
					ch = (char)(hi * 16 + lo);
					s += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (n + 1 >= vcap)
					return -1;
				val[n++] = ch;
			}
			val[n] = '\0';
			*vlen = n;
			return 1;
		}
		q = amp ? amp + 1 : end;
	}
	return 0;
}

/* A decimal parameter in [lo, hi]; absent: dflt (or -1 when dflt < 0).
 * 0 ok, -1 bad. */
static int query_u64(const char *q, size_t qlen, const char *key, uint64_t lo, uint64_t hi, int64_t dflt,
                     uint64_t *out)
{
	char val[32];
	size_t n;
	int f = query_get(q, qlen, key, val, sizeof val, &n);
	if (f < 0)
		return -1;
	if (f == 0) {
		if (dflt < 0)
			return -1;
		*out = (uint64_t)dflt;
		return 0;
	}
	if (n == 0 || n > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(val[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* /file                                                                      */

/* Refuse what must never be looked up: empty, absolute, a ".." component,
 * an embedded NUL. */
static bool path_acceptable(const char *path, size_t len)
{
	if (len == 0 || path[0] == '/' || memchr(path, '\0', len))
		return false;
	const char *s = path, *end = path + len;
	while (s < end) {
		const char *slash = memchr(s, '/', (size_t)(end - s));
		const char *ce = slash ? slash : end;
		if (ce - s == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = slash ? slash + 1 : end;
	}
	return true;
}

static atomic_int openat2_missing;

/* Open path under the root for reading, never leaving it.  Returns an fd
 * or a negative errno: -EXDEV/-ELOOP/-EACCES for escapes (403), -ENOENT
 * and friends (404).  noinline: reads errno (see the top). */
static NOINLINE int open_beneath(struct httpd *h, const char *path)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK; /* no blocking on a FIFO */
#ifdef HTTPD_HAVE_OPENAT2
	if (!h->cfg.no_openat2 && !atomic_load_explicit(&openat2_missing, memory_order_relaxed)) {
		struct open_how how;
		memset(&how, 0, sizeof how);
		how.flags = (uint64_t)flags;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		long fd = syscall(SYS_openat2, h->rootfd, path, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store_explicit(&openat2_missing, 1, memory_order_relaxed);
	}
#endif
	/* Fallback: resolve every symlink and check that the result is
	 * still under the root, then open it without following a final
	 * symlink (a race with someone replacing components remains, which
	 * is why openat2 is preferred). */
	size_t rl = strlen(h->root);
	char *full = malloc(rl + strlen(path) + 2);
	char *res = malloc(PATH_MAX);
	int rc;
	if (!full || !res) {
		rc = -ENOMEM;
		goto out;
	}
	sprintf(full, "%s/%s", h->root, path);
	if (!realpath(full, res)) {
		rc = -errno;
		goto out;
	}
	if (strncmp(res, h->root, rl) != 0 || (res[rl] != '/' && res[rl] != '\0')) {
		rc = -EXDEV;
		goto out;
	}
	rc = open(res, flags | O_NOFOLLOW);
	if (rc < 0)
		rc = -errno;
out:
	free(full);
	free(res);
	return rc;
}

/* After open_beneath: a regular file, blocking reads.  Size or -errno. */
static NOINLINE int64_t file_prepare(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		return -errno;
	return (int64_t)st.st_size;
}

static void route_file(struct conn *c, const char *q, size_t qlen, bool head, int ch)
{
	struct httpd *h = c->h;
	char path[1024];
	size_t plen;
	uint64_t want;
	int f;

	if (!h->root) {
		respond_text(c, 404, "no root directory configured\n", head, ch);
		return;
	}
	f = query_get(q, qlen, "path", path, sizeof path, &plen);
	if (f <= 0 || query_u64(q, qlen, "bytes", 0, h->cfg.max_file_bytes, (int64_t)h->cfg.max_file_bytes, &want) < 0) {
		respond_text(c, 400, "bad parameters\n", head, ch);
		return;
	}
	if (plen == 0) {
		respond_text(c, 400, "bad parameters: path is empty\n", head, ch);
		return;
	}
	if (!path_acceptable(path, plen)) {
		respond_text(c, 403, "path refused\n", head, ch);
		return;
	}
	int fd = open_beneath(h, path);
	if (fd < 0) {
		if (fd == -EXDEV || fd == -ELOOP || fd == -EACCES || fd == -EPERM)
			respond_text(c, 403, "path refused\n", head, ch);
		else
			respond_text(c, 404, "no such file\n", head, ch);
		return;
	}
	int64_t size = file_prepare(fd);
	if (size < 0) {
		weft_close(fd);
		respond_text(c, 404, "not a regular file\n", head, ch);
		return;
	}
	size_t n = (size_t)((uint64_t)size < want ? (uint64_t)size : want);
	char *buf = n ? malloc(n) : NULL;
	ssize_t got = 0;
	if (n && !buf) {
		weft_close(fd);
		respond_text(c, 500, "out of memory\n", head, ch);
		return;
	}
	if (n && !head)
		got = weft_read_full(fd, buf, n, 0);
	else
		got = (ssize_t)n;
	weft_close(fd);
	if (got < 0)
		respond_text(c, 500, "read failed\n", head, ch);
	else
		respond(c, 200, "application/octet-stream", buf, (size_t)got, head, ch, NULL);
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                     */

struct fan_arg {
	uint64_t us;
};

static void fan_task(void *p)
{
	httpd_burn_us(((struct fan_arg *)p)->us);
}

static bool path_is(const char *path, size_t plen, const char *lit)
{
	return plen == strlen(lit) && memcmp(path, lit, plen) == 0;
}

/* Answer the request just parsed (c->url, parser state) into c->out.
 * Returns true when the connection is to be closed after it. */
static bool handle_request(struct conn *c)
{
	llhttp_t *p = &c->parser;
	int method = llhttp_get_method(p);
	bool head = method == HTTP_HEAD;
	bool close = !c->keep_alive || llhttp_get_upgrade(p);
	int ch = close ? CONN_CLOSE : (p->http_major == 1 && p->http_minor == 0) ? CONN_KA10 : CONN_KEEP;
	const char *url = c->url;
	size_t ulen = c->url_len;
	const char *qm = memchr(url, '?', ulen);
	size_t plen = qm ? (size_t)(qm - url) : ulen;
	const char *q = qm ? qm + 1 : url + ulen;
	size_t qlen = ulen - plen - (qm ? 1 : 0);
	char body[96];
	uint64_t a, b;

	c->requests++;
	bool known = path_is(url, plen, "/") || path_is(url, plen, "/work") || path_is(url, plen, "/fanout") ||
	             path_is(url, plen, "/sleep") || path_is(url, plen, "/file");
	if (!known) {
		respond_text(c, 404, "not found\n", head, ch);
		return close;
	}
	if (method != HTTP_GET && !head) {
		respond(c, 405, "text/plain", "method not allowed\n", strlen("method not allowed\n"), false, ch,
		        "Allow: GET, HEAD\r\n");
		return close;
	}
	if (plen == 1) {
		respond(c, 200, "text/plain", "Hello, World!", 13, head, ch, NULL);
		return close;
	}
	/* The rest takes time: send what is ready first. */
	if (c->out_len && conn_flush(c) < 0)
		return true;
	if (path_is(url, plen, "/work")) {
		if (query_u64(q, qlen, "us", 0, HTTPD_MAX_WORK_US, -1, &a) < 0) {
			respond_text(c, 400, "bad parameters: us=0..1000000\n", head, ch);
			return close;
		}
		httpd_burn_us(a);
		snprintf(body, sizeof body, "work us=%llu\n", (unsigned long long)a);
		respond_text(c, 200, body, head, ch);
	} else if (path_is(url, plen, "/fanout")) {
		if (query_u64(q, qlen, "tasks", 1, HTTPD_MAX_FANOUT_TASKS, -1, &a) < 0 ||
		    query_u64(q, qlen, "us", 0, HTTPD_MAX_FANOUT_US, -1, &b) < 0 || a * b > HTTPD_MAX_FANOUT_TOTAL_US) {
			respond_text(c, 400, "bad parameters: tasks=1..256 us=0..100000 tasks*us<=2000000\n", head, ch);
			return close;
		}
		struct fan_arg fa = { b };
		weft_group_t g;
		weft_group_init(&g);
		for (uint64_t i = 0; i < a; i++)
			if (weft_spawn(&g, fan_task, &fa) != 0)
				fan_task(&fa); /* no memory for a task: do it here */
		if (weft_wait(&g) != 0) {
			respond_text(c, 500, "wait failed\n", head, ch);
			return close;
		}
		snprintf(body, sizeof body, "fanout tasks=%llu us=%llu\n", (unsigned long long)a,
		         (unsigned long long)b);
		respond_text(c, 200, body, head, ch);
	} else if (path_is(url, plen, "/sleep")) {
		if (query_u64(q, qlen, "ms", 0, HTTPD_MAX_SLEEP_MS, -1, &a) < 0) {
			respond_text(c, 400, "bad parameters: ms=0..60000\n", head, ch);
			return close;
		}
		if (a && conn_sleep(c, a * 1000000ull) < 0)
			return true; /* the connection died, or the server stops */
		snprintf(body, sizeof body, "slept ms=%llu\n", (unsigned long long)a);
		respond_text(c, 200, body, head, ch);
	} else {
		route_file(c, q, qlen, head, ch);
	}
	return close;
}

/* ------------------------------------------------------------------------ */
/* The connection fiber                                                       */

enum feed { FEED_MORE, FEED_CLOSE, FEED_ERROR };

/* Parse n bytes of input, answering every complete request. */
static enum feed conn_feed(struct conn *c, const char *p, size_t n)
{
	struct httpd *h = c->h;
	const char *end = p + n;

	while (p < end) {
		c->exec_base = p;
		if (c->in_msg)
			c->msg_base = p;
		llhttp_errno_t e = llhttp_execute(&c->parser, p, (size_t)(end - p));
		if (e == HPE_OK) {
			if (c->in_msg && !c->headers_done) {
				c->head_used += (size_t)(end - c->msg_base);
				if (c->head_used > h->cfg.header_limit) {
					c->too_large = true;
					break;
				}
			}
			return FEED_MORE;
		}
		if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
			const char *q = llhttp_get_error_pos(&c->parser);
			if (e == HPE_PAUSED)
				llhttp_resume(&c->parser);
			else
				c->keep_alive = false; /* no upgrades: answer, then close */
			if (handle_request(c))
				return FEED_CLOSE;
			if (c->out_len >= OUT_FLUSH && conn_flush(c) < 0)
				return FEED_ERROR;
			p = q;
			continue;
		}
		break; /* a parse error, or a span callback's refusal */
	}
	if (p >= end && !c->too_large)
		return FEED_MORE; /* everything parsed and answered */
	c->requests++;
	if (c->too_large) {
		atomic_fetch_add_explicit(&h->st_large, 1, memory_order_relaxed);
		respond_text(c, 431, "request header block too large\n", false, CONN_CLOSE);
	} else {
		atomic_fetch_add_explicit(&h->st_bad, 1, memory_order_relaxed);
		respond_text(c, 400, "malformed request\n", false, CONN_CLOSE);
	}
	return FEED_CLOSE;
}

/* Shut the write side and drop what the client still sends, briefly, so
 * that the answers just sent reach it (see the top). */
static void conn_linger(struct conn *c)
{
	struct httpd *h = c->h;
	uint64_t limit = (uint64_t)LINGER_MS * 1000000ull;
	if (limit > h->idle_ns)
		limit = h->idle_ns;
	uint64_t deadline = now_ns() + limit;
	size_t total = 0;

	shutdown(c->fd, SHUT_WR);
	while (total < LINGER_BYTES) {
		uint64_t now = now_ns();
		if (now >= deadline)
			break;
		ssize_t r = conn_recv(c, c->in, sizeof c->in, deadline - now);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
}

/* Set up a socket just accepted.  noinline: errno-free, but keeps system
 * calls out of the fiber's main loop. */
static NOINLINE void conn_sockopts(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Take c off h's list of connections.  Under h->lock. */
static void conn_unlink(struct httpd *h, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void conn_main(void *arg)
{
	struct conn *c = arg;
	struct httpd *h = c->h;
	bool linger = false;

	conn_sockopts(c->fd);
	llhttp_init(&c->parser, HTTP_REQUEST, &h->settings);
	c->parser.data = c;
	for (;;) {
		uint64_t tmo = h->idle_ns;
		if (c->in_msg) {
			uint64_t now = now_ns();
			tmo = c->deadline > now ? c->deadline - now : 1;
		}
		ssize_t n = conn_recv(c, c->in, sizeof c->in, tmo);
		if (n == 0)
			break; /* the client closed (a partial request is dropped) */
		if (n < 0) {
			if (n == -ETIMEDOUT) {
				atomic_fetch_add_explicit(&h->st_timeouts, 1, memory_order_relaxed);
				if (c->in_msg) {
					c->requests++;
					respond_text(c, 408, "request timed out\n", false, CONN_CLOSE);
					if (conn_flush(c) == 0)
						linger = true;
				}
			} else if (n != -ECANCELED) {
				atomic_fetch_add_explicit(&h->st_io_errors, 1, memory_order_relaxed);
			}
			break;
		}
		enum feed f = conn_feed(c, c->in, (size_t)n);
		int rc = f == FEED_ERROR ? -EIO : conn_flush(c);
		if (rc < 0) {
			if (rc != -ECANCELED)
				atomic_fetch_add_explicit(&h->st_io_errors, 1, memory_order_relaxed);
			break;
		}
		if (f == FEED_CLOSE) {
			linger = true;
			break;
		}
	}
	if (linger)
		conn_linger(c);

	/* Off the list first (httpd_stop no longer shuts c->fd down), then
	 * close, then count down: when live reaches 0 every fd is closed. */
	pthread_mutex_lock(&h->lock);
	conn_unlink(h, c);
	pthread_mutex_unlock(&h->lock);
	weft_close(c->fd);
	atomic_fetch_add_explicit(&h->st_requests, c->requests, memory_order_relaxed);
	atomic_fetch_sub_explicit(&h->st_active, 1, memory_order_relaxed);
	pthread_mutex_lock(&h->lock);
	if (--h->live == 0)
		pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	/* h may be gone from here on (httpd_stop); c is ours alone. */
	free(c->out);
	free(c->url);
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Accepting                                                                  */

/* Start a connection's fiber for fd; closes fd on failure. */
static void conn_start(struct httpd *h, int fd)
{
	struct conn *c = calloc(1, sizeof *c);
	char *url = malloc(h->cfg.header_limit + 1);
	if (!c || !url) {
		free(c);
		free(url);
		weft_close(fd);
		return;
	}
	c->h = h;
	c->fd = fd;
	c->url = url;

	pthread_mutex_lock(&h->lock);
	if (stopping(h)) {
		pthread_mutex_unlock(&h->lock);
		goto fail;
	}
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->live++;
	atomic_fetch_add_explicit(&h->st_active, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->st_accepted, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);

	if (weft_go(h->rt, conn_main, c) == 0)
		return;
	pthread_mutex_lock(&h->lock);
	conn_unlink(h, c);
	h->live--; /* the acceptor still counts: never 0 here */
	atomic_fetch_sub_explicit(&h->st_active, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);
fail:
	weft_close(fd);
	free(url);
	free(c);
}

/* The acceptor has stopped for good: it no longer counts in live. */
static void accept_end(struct httpd *h)
{
	pthread_mutex_lock(&h->lock);
	if (--h->live == 0)
		pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	/* h may be gone from here on (httpd_stop). */
}

static void accept_cb(weft_op_t *op);

static int accept_submit(struct httpd *h)
{
	memset(&h->accept_op, 0, sizeof h->accept_op);
	h->accept_op.opcode = WEFT_OP_ACCEPT_MULTI;
	h->accept_op.fd = h->lfd;
	h->accept_op.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
	h->accept_op.cb = accept_cb;
	h->accept_op.data = h;
	return weft_op_submit(h->rt, &h->accept_op);
}

static void backoff_cb(weft_op_t *op)
{
	struct httpd *h = op->data;

	if (op->result == 0 && !stopping(h) && accept_submit(h) == 0)
		return;
	accept_end(h);
}

/* One callback per accepted connection, then one with what stopped the
 * accept (weft.h): the runtime's end (-ECANCELED), httpd_stop's shutdown
 * (-EINVAL), or an error, after which it is submitted again. */
static void accept_cb(weft_op_t *op)
{
	struct httpd *h = op->data;
	int rc = (int)op->result;

	if (rc >= 0) {
		conn_start(h, rc);
		return;
	}
	if (rc != -ECANCELED && rc != -EBADF && rc != -ENOTSOCK && !stopping(h)) {
		if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM || rc == -EINVAL) {
			/* Out of descriptors or memory: the connections we have
			 * keep being served; accept again shortly (httpd_stop
			 * waits at most this long for it). */
			atomic_fetch_add_explicit(&h->st_backoffs, 1, memory_order_relaxed);
			memset(&h->backoff_op, 0, sizeof h->backoff_op);
			h->backoff_op.opcode = WEFT_OP_SLEEP;
			h->backoff_op.timeout_ns = ACCEPT_BACKOFF_NS;
			h->backoff_op.cb = backoff_cb;
			h->backoff_op.data = h;
			if (weft_op_submit(h->rt, &h->backoff_op) == 0)
				return;
		} else if (accept_submit(h) == 0) {
			return; /* ECONNABORTED, EPROTO, EPERM (firewall), ... */
		}
	}
	accept_end(h);
}

/* ------------------------------------------------------------------------ */
/* Start, stop                                                                */

void httpd_config_init(struct httpd_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
}

/* Listening socket on host:port.  fd or -errno. */
static int listen_on(const char *host, int port, int backlog)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int rc = -EADDRNOTAVAIL;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof service, "%d", port);
	if (getaddrinfo(host, service, &hints, &res) != 0 || !res)
		return -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
			rc = -errno;
			close(fd);
			continue;
		}
		rc = fd;
		break;
	}
	freeaddrinfo(res);
	return rc;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

static void httpd_free(struct httpd *h)
{
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->rootfd >= 0)
		close(h->rootfd);
	free(h->root);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int httpd_start(weft_runtime_t *rt, const struct httpd_config *cfg_in, struct httpd **out)
{
	struct httpd_config cfg;
	struct httpd *h;
	int rc;

	if (!rt || !out)
		return -EINVAL;
	if (weft_worker_index() >= 0)
		return -EDEADLK;
	if (cfg_in)
		cfg = *cfg_in;
	else
		httpd_config_init(&cfg);
	if (!cfg.host)
		cfg.host = "127.0.0.1";
	if (cfg.port < 0 || cfg.port > 65535 || cfg.backlog < 0)
		return -EINVAL;
	if (!cfg.backlog)
		cfg.backlog = 4096;
	if (!cfg.header_limit)
		cfg.header_limit = 8192;
	if (cfg.header_limit < 256 || cfg.header_limit > (1u << 20))
		return -EINVAL;
	if (!cfg.idle_timeout_ms)
		cfg.idle_timeout_ms = 10000;
	if (!cfg.max_file_bytes)
		cfg.max_file_bytes = 1u << 20;
	if (cfg.max_file_bytes > (1u << 30))
		return -EINVAL;

	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->rt = rt;
	h->lfd = -1;
	h->rootfd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->idle_ns = (uint64_t)cfg.idle_timeout_ms * 1000000ull;

	if (cfg.root) {
		h->root = realpath(cfg.root, NULL);
		if (!h->root) {
			rc = -errno;
			goto fail;
		}
		h->rootfd = open(h->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (h->rootfd < 0) {
			rc = -errno;
			goto fail;
		}
	}
	h->cfg = cfg;
	h->cfg.host = NULL; /* not kept: the caller's string */
	h->cfg.root = NULL;

	llhttp_settings_init(&h->settings);
	h->settings.on_message_begin = on_message_begin;
	h->settings.on_url = on_url;
	h->settings.on_header_field = on_header_span;
	h->settings.on_header_value = on_header_span;
	h->settings.on_headers_complete = on_headers_complete;
	h->settings.on_message_complete = on_message_complete;

	(void)httpd_burn_rate(); /* calibrate now, not in the first request */

	rc = listen_on(cfg.host, cfg.port, cfg.backlog);
	if (rc < 0)
		goto fail;
	h->lfd = rc;
	rc = bound_port(h->lfd);
	if (rc < 0)
		goto fail;
	h->port = rc;

	h->live = 1;
	rc = accept_submit(h);
	if (rc < 0)
		goto fail;
	*out = h;
	return h->port;
fail:
	httpd_free(h);
	return rc;
}

int httpd_port(const struct httpd *h)
{
	return h ? h->port : -EINVAL;
}

void httpd_get_stats(const struct httpd *h, struct httpd_stats *st)
{
	struct httpd *m = (struct httpd *)(uintptr_t)h;
	st->accepted = atomic_load(&m->st_accepted);
	st->active = atomic_load(&m->st_active);
	st->requests = atomic_load(&m->st_requests);
	st->bad_requests = atomic_load(&m->st_bad);
	st->too_large = atomic_load(&m->st_large);
	st->timeouts = atomic_load(&m->st_timeouts);
	st->io_errors = atomic_load(&m->st_io_errors);
	st->accept_backoffs = atomic_load(&m->st_backoffs);
}

int httpd_stop(struct httpd *h)
{
	if (!h)
		return -EINVAL;
	if (weft_worker_index() >= 0)
		return -EDEADLK;

	pthread_mutex_lock(&h->lock);
	atomic_store(&h->stopping, true);
	/* Ends an accept in progress (-EINVAL) and every later one. */
	shutdown(h->lfd, SHUT_RDWR);
	/* Every listed connection's fd is still open (see the top); ones
	 * accepted from now on are refused by conn_start. */
	for (struct conn *c = h->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (h->live)
		pthread_cond_wait(&h->cv, &h->lock);
	pthread_mutex_unlock(&h->lock);
	httpd_free(h);
	return 0;
}
