/*
 * uv_hello: the libuv peer server of bench/http-compare.
 *
 * One thread, one uv_loop: the shape of a classic single-loop C server,
 * which is the lower bound of per-request overhead that weft-httpd is
 * compared against.  The parser is deliberately minimal and by hand: it
 * finds the request line and the blank line that ends the header block, and
 * ignores headers and bodies (wrk and weft-load send GETs without bodies).
 * Every complete request in the read buffer is answered in order
 * (pipelining), the responses of one read batched into one write.
 *
 * Routes: "/" answers "Hello, World!"; "/work?us=N" burns about N µs of CPU
 * on the loop thread with the xorshift loop that the other peers use,
 * calibrated at start against the thread's CPU clock; anything else 404.
 * A method other than GET, or a header block over the buffer, gets 400 and
 * the connection is closed.
 *
 * Usage: uv_hello [--listen HOST:PORT]   (default 127.0.0.1:8084)
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#define CONN_BUF 16384

typedef struct conn {
	uv_tcp_t tcp;
	size_t have;     /* bytes in buf */
	int closing;     /* close after the pending write */
	char buf[CONN_BUF];
} conn_t;

typedef struct wreq {
	uv_write_t req;
	conn_t *c;
	size_t len;
	char data[]; /* responses, batched */
} wreq_t;

static double iters_per_us = 100.0;
static volatile uint64_t sink;

static uint64_t spin(uint64_t iters)
{
	uint64_t x = 88172645463325252ull;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ volatile("" : "+r"(x)); /* keep every round */
	}
	return x;
}

/* This thread's CPU time: calibration is not fooled by preemption. */
static double cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Iterations per microsecond of CPU: best of several runs of at least
 * 5 ms, timed with the thread's CPU clock (so other processes taking the
 * CPU do not make the loop look slower). */
static void calibrate(void)
{
	double best = 0;
	uint64_t n = 100000;
	for (int i = 0; i < 8; i++) {
		double t = cpu_us();
		sink += spin(n);
		double us = cpu_us() - t;
		if (us < 5000) {
			n *= 4;
			continue;
		}
		if ((double)n / us > best)
			best = (double)n / us;
	}
	if (best > 0)
		iters_per_us = best;
}

static void on_close(uv_handle_t *h)
{
	free(h->data);
}

static void conn_close(conn_t *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_write(uv_write_t *req, int status)
{
	wreq_t *w = (wreq_t *)req;
	conn_t *c = w->c;
	free(w);
	if (status < 0 || c->closing)
		conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)hint;
	conn_t *c = h->data;
	*b = uv_buf_init(c->buf + c->have, (unsigned)(CONN_BUF - c->have));
}

/* Value of integer query parameter key in target[0..len), or 0. */
static long query_long(const char *target, size_t len, const char *key)
{
	const char *q = memchr(target, '?', len);
	size_t klen = strlen(key);
	if (!q)
		return 0;
	const char *end = target + len;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			long v = 0;
			for (const char *d = p + klen + 1; d < stop && *d >= '0' && *d <= '9'; d++)
				if (v < 100000000)
					v = v * 10 + (*d - '0');
			return v;
		}
		p = stop + 1;
	}
	return 0;
}

/* Append one response for request line [line, line+len) to out. */
static size_t respond(char *out, const char *line, size_t len, int *bad)
{
	static const char head[] = "HTTP/1.1 %s\r\nContent-Length: %zu\r\n"
				   "Content-Type: text/plain\r\n\r\n%s";
	const char *status = "200 OK", *body;
	if (len < 5 || memcmp(line, "GET ", 4)) {
		*bad = 1;
		status = "400 Bad Request";
		body = "bad request";
	} else {
		const char *t = line + 4;
		const char *sp = memchr(t, ' ', len - 4);
		size_t tlen = sp ? (size_t)(sp - t) : len - 4;
		size_t plen = tlen;
		const char *qm = memchr(t, '?', tlen);
		if (qm)
			plen = (size_t)(qm - t);
		if (plen == 1 && t[0] == '/') {
			body = "Hello, World!";
		} else if (plen == 5 && !memcmp(t, "/work", 5)) {
			long us = query_long(t, tlen, "us");
			sink += spin((uint64_t)((double)us * iters_per_us));
			body = "done";
		} else {
			status = "404 Not Found";
			body = "not found";
		}
	}
	return (size_t)sprintf(out, head, status, strlen(body), body);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)b;
	conn_t *c = s->data;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->have += (size_t)n;

	/* Each response is under 128 bytes; a request (or a malformed head that
	 * gets a 400) takes at least 4 bytes, plus one for a full buffer. */
	size_t cap = (c->have / 4 + 2) * 128;
	wreq_t *w = malloc(sizeof(*w) + cap);
	if (!w) {
		conn_close(c);
		return;
	}
	w->c = c;
	w->len = 0;
	size_t start = 0;
	int bad = 0;
	while (!bad) {
		char *end = memmem(c->buf + start, c->have - start, "\r\n\r\n", 4);
		if (!end)
			break;
		char *line = c->buf + start;
		char *eol = memchr(line, '\r', (size_t)(end - line) + 1);
		w->len += respond(w->data + w->len, line, (size_t)(eol - line), &bad);
		start = (size_t)(end + 4 - c->buf);
	}
	memmove(c->buf, c->buf + start, c->have - start);
	c->have -= start;
	if (!bad && c->have == CONN_BUF) {
		bad = 1;
		w->len += respond(w->data + w->len, "", 0, &bad);
	}
	if (bad) {
		c->closing = 1;
		uv_read_stop(s);
	}
	if (w->len == 0) {
		free(w);
		return;
	}
	uv_buf_t out = uv_buf_init(w->data, (unsigned)w->len);
	if (uv_write(&w->req, s, &out, 1, on_write) < 0) {
		free(w);
		conn_close(c);
	}
}

static void on_conn(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	conn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:8084";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			listen = argv[++i];
		} else {
			fprintf(stderr, "usage: uv_hello [--listen HOST:PORT]\n");
			return 2;
		}
	}
	char host[64];
	const char *colon = strrchr(listen, ':');
	if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
		fprintf(stderr, "uv_hello: bad --listen '%s'\n", listen);
		return 2;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';

	calibrate();
	uv_loop_t *loop = uv_default_loop();
	uv_tcp_t server;
	struct sockaddr_in addr;
	int r = uv_ip4_addr(host, atoi(colon + 1), &addr);
	if (!r)
		r = uv_tcp_init(loop, &server);
	if (!r)
		r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
	if (!r)
		r = uv_listen((uv_stream_t *)&server, 1024, on_conn);
	if (r) {
		fprintf(stderr, "uv_hello: %s: %s\n", listen, uv_strerror(r));
		return 1;
	}
	fprintf(stderr, "uv_hello: on %s, one loop\n", listen);
	return uv_run(loop, UV_RUN_DEFAULT);
}
