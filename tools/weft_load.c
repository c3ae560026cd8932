/*
 * weft-load: an open-loop HTTP/1.1 load generator built on weft fibers.
 *
 * Why open loop.  A closed-loop client (wrk, ab) sends a connection's next
 * request only when the previous response has arrived, so when the server
 * stalls the client stops sending too: the requests that a real user would
 * have sent during the stall are never issued and never measured.  That is
 * "coordinated omission" (Gil Tene); a 1 s pause then shows up as one slow
 * request per connection instead of the thousands a steady stream of users
 * would have seen.  weft-load, like wrk2, fixes the schedule in advance and
 * measures every request from the moment it *should* have been sent.
 *
 * The schedule.  With R requests/s in total over C connections, each
 * connection sends every C/R seconds, and connection c is shifted by c/R
 * seconds so that the connections interleave evenly and the aggregate is a
 * request every 1/R seconds:
 *
 *     intended(c, i) = t0 + (c + i*C) / R        c in [0, C), i = 0, 1, ...
 *
 * for every intended time before t0 + duration.  t0 lies a short warm-up
 * after start (100 ms, more for many connections) so that connections are
 * open before it.
 *
 * A connection is one fiber (weft_go) with at most one request in flight
 * (no pipelining: a response is matched to its request by order alone).
 * For request i it sleeps (weft_sleep) until intended(c, i) when that is
 * still ahead; when the connection has fallen behind, because the previous
 * response came late, it sends at once.  Either way the recorded latency
 * runs from intended(c, i) to completion: time spent waiting for the
 * connection to become free counts, exactly as the user who would have
 * sent that request would have experienced it.
 *
 * One refinement over wrk2: the client's own lateness is not the server's.
 * A request could have started at ready = max(intended, the time its
 * connection became free); if it started later than that, the difference
 * (client lag: the timer firing late, the worker busy with other fibers)
 * is subtracted.  So latency = completion - intended - client lag: all of
 * the backlog a slow or stopped server causes, none of the client's timer
 * jitter, which on a loaded 2-core machine is tens of microseconds and
 * would otherwise dominate fast requests.  --strict drops the subtraction
 * (wrk2's rule).  Beside it are kept the uncorrected service time,
 * completion - actual send (what a closed-loop client measures; the gap
 * between the two is the coordinated omission; wrk 4 patches its own
 * histogram after the run with synthetic samples at its mean interval),
 * and the client lag itself.  C must be large
 * enough that C / R exceeds the normal response time, or the connections
 * cannot keep up with the schedule and latency grows without bound (the
 * report warns).
 *
 * Responses are parsed as far as framing needs: status line, Content-Length,
 * Connection: close; a response without Content-Length is read to the end
 * of the connection.  Chunked bodies are counted as parse errors.  Any
 * error (connect, send, receive, timeout, parse) closes the connection; the
 * next request opens a new one.  Non-2xx responses are timed like the rest
 * and counted.
 *
 * Bounded in time.  Every operation has a deadline: the per-request
 * --timeout, and never later than t0 + duration + drain (drain = the
 * timeout), after which nothing new starts.  The main thread waits until
 * every fiber has returned or that hard deadline passes, then destroys the
 * runtime, which cancels whatever is still pending; an alarm guards the
 * destroy in case a fiber does not return.
 *
 * Statistics are per worker: a fiber records into the histogram of the
 * worker it is running on (weft_worker_index), and no fiber switch happens
 * between choosing the slot and writing it, so each slot has one writer at
 * a time without locks.  They are merged after the runtime is destroyed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "weft.h"

#define MAX_PATHS 64
#define RESP_BUF 16384 /* response head limit; bodies stream through it */
#define CONNECT_RETRY_NS 10000000ull /* pause after a failed connect: 10 ms */
#define LATE_NS 1000000ull /* a send this far behind schedule counts as late */

enum { E_CONNECT, E_SEND, E_RECV, E_TIMEOUT, E_PARSE, E_COUNT };
static const char *const err_names[E_COUNT] = {"connect", "send", "recv",
					       "timeout", "parse"};

/* Per-worker statistics; one writer at a time (see the top comment). */
struct wstats {
	hist_t lat; /* from intended send time (corrected) */
	hist_t svc; /* from actual send time (uncorrected) */
	hist_t lag; /* client lag (see the top comment) */
	uint64_t sent, done, non2xx, late;
	uint64_t err[E_COUNT];
	uint64_t last_done; /* CLOCK_MONOTONIC ns */
} __attribute__((aligned(64)));

struct opts {
	double rate;
	unsigned connections;
	double duration;
	double timeout;
	unsigned workers;
	int io;
	const char *json;
	bool strict; /* latency from intended time, client lag included */
	char host[256];
	char port[16];
	const char *paths[MAX_PATHS];
	unsigned npaths;
	char url[512];
};

struct conn {
	unsigned id;
	int fd;
	size_t have; /* bytes in buf not yet consumed */
	char buf[RESP_BUF];
};

/* Shared, read-only once the fibers run (except live and stopping). */
static struct {
	struct opts o;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *req[MAX_PATHS];
	size_t reqlen[MAX_PATHS];
	uint64_t t0, t_end, t_hard;
	double period_ns; /* 1e9 / rate */
	uint64_t timeout_ns;
	struct wstats *stats;
	unsigned nstats;
	atomic_uint live;     /* fibers still running */
	atomic_int stopping;  /* main gave up waiting: fibers return at once */
} G;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The calling worker's statistics slot.  Fibers only, no suspension until
 * the caller is done with it. */
static struct wstats *my_stats(void)
{
	int w = weft_worker_index();
	return &G.stats[w >= 0 && (unsigned)w < G.nstats ? (unsigned)w : G.nstats - 1];
}

/* Run one operation that must finish by deadline.  Returns its result. */
static ssize_t op_run(weft_op_t *op, uint64_t deadline)
{
	uint64_t now = now_ns();
	if (now >= deadline)
		return -ETIMEDOUT;
	op->timeout_ns = deadline - now;
	return weft_op_run(op);
}

static ssize_t io_run(int opcode, int fd, void *buf, size_t len, uint64_t deadline)
{
	weft_op_t op;
	memset(&op, 0, sizeof(op));
	op.opcode = opcode;
	op.fd = fd;
	op.buf = buf;
	op.len = len;
	return op_run(&op, deadline);
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->have = 0;
}

/* Open c's connection.  Returns 0 or a negative errno. */
static int conn_open(struct conn *c, uint64_t deadline)
{
	int fd = socket(G.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	weft_op_t op;
	memset(&op, 0, sizeof(op));
	op.opcode = WEFT_OP_CONNECT;
	op.fd = fd;
	op.addr = (struct sockaddr *)&G.addr;
	op.addrlen = G.addrlen;
	ssize_t r = op_run(&op, deadline);
	if (r < 0) {
		close(fd);
		return (int)r;
	}
	c->fd = fd;
	c->have = 0;
	return 0;
}

/* Case-insensitive: does header line [p, end) have name `name` (with the
 * colon)?  Returns the value's start or NULL. */
static const char *header_value(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);
	if ((size_t)(end - p) < n || strncasecmp(p, name, n))
		return NULL;
	p += n;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static bool value_has(const char *v, const char *end, const char *token)
{
	size_t n = strlen(token);
	for (; v + n <= end; v++)
		if (!strncasecmp(v, token, n))
			return true;
	return false;
}

/* read_response: the server closed the connection before any byte of the
 * answer (a kept-alive connection it had already decided to close). */
#define CLOSED_IDLE (-(E_COUNT + 1))

/*
 * Read one response on c.  Returns the status code, CLOSED_IDLE, or
 * -(E_* + 1) for the kind of error.  *keep is cleared when the connection
 * must be closed after it.  Fiber only.
 */
static int read_response(struct conn *c, uint64_t deadline, bool *keep)
{
	size_t scanned = 0;
	char *hdr_end = NULL;
	while (!hdr_end) {
		if (c->have == sizeof(c->buf))
			return -(E_PARSE + 1);
		ssize_t n = io_run(WEFT_OP_RECV, c->fd, c->buf + c->have,
				   sizeof(c->buf) - c->have, deadline);
		if (n == -ETIMEDOUT)
			return -(E_TIMEOUT + 1);
		if (n == 0 && c->have == 0)
			return CLOSED_IDLE;
		if (n <= 0)
			return -(E_RECV + 1);
		c->have += (size_t)n;
		size_t from = scanned > 3 ? scanned - 3 : 0;
		hdr_end = memmem(c->buf + from, c->have - from, "\r\n\r\n", 4);
		scanned = c->have;
	}
	char *p = c->buf, *head_end = hdr_end + 2; /* keep the last CRLF */
	size_t head_len = (size_t)(hdr_end + 4 - c->buf);

	/* Status line: HTTP/1.x NNN ... */
	if (head_len < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
		return -(E_PARSE + 1);
	bool http10 = p[7] == '0';
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -(E_PARSE + 1);
		status = status * 10 + (p[i] - '0');
	}
	*keep = !http10;
	long long clen = -1;
	char *line = memchr(p, '\n', (size_t)(head_end - p)) + 1;
	while (line < head_end) {
		char *eol = memchr(line, '\r', (size_t)(head_end - line));
		const char *v;
		if ((v = header_value(line, eol, "content-length:"))) {
			char *e;
			clen = strtoll(v, &e, 10);
			if (e == v || clen < 0)
				return -(E_PARSE + 1);
		} else if ((v = header_value(line, eol, "transfer-encoding:"))) {
			if (value_has(v, eol, "chunked"))
				return -(E_PARSE + 1);
		} else if ((v = header_value(line, eol, "connection:"))) {
			if (value_has(v, eol, "close"))
				*keep = false;
			else if (value_has(v, eol, "keep-alive"))
				*keep = true;
		}
		line = eol + 2;
	}
	if (clen < 0 && (status == 204 || status == 304 || status < 200))
		clen = 0;

	/* Body: consume what came with the head, then read the rest through
	 * the buffer. */
	size_t body_have = c->have - head_len;
	if (clen >= 0) {
		if (body_have > (size_t)clen)
			return -(E_PARSE + 1); /* bytes we never asked for */
		uint64_t left = (uint64_t)clen - body_have;
		while (left > 0) {
			size_t want = left < sizeof(c->buf) ? (size_t)left : sizeof(c->buf);
			ssize_t n = io_run(WEFT_OP_RECV, c->fd, c->buf, want, deadline);
			if (n == -ETIMEDOUT)
				return -(E_TIMEOUT + 1);
			if (n <= 0)
				return -(E_RECV + 1);
			left -= (uint64_t)n;
		}
	} else {
		*keep = false; /* delimited by the end of the connection */
		for (;;) {
			ssize_t n = io_run(WEFT_OP_RECV, c->fd, c->buf, sizeof(c->buf), deadline);
			if (n == 0)
				break;
			if (n == -ETIMEDOUT)
				return -(E_TIMEOUT + 1);
			if (n < 0)
				return -(E_RECV + 1);
		}
	}
	c->have = 0;
	return status;
}

/* Send all of buf.  Returns 0 or -(E_* + 1). */
static int send_all(struct conn *c, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = io_run(WEFT_OP_SEND, c->fd, (void *)buf, len, deadline);
		if (n == -ETIMEDOUT)
			return -(E_TIMEOUT + 1);
		if (n <= 0)
			return -(E_SEND + 1);
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void conn_main(void *arg)
{
	struct conn *c = arg;
	unsigned C = G.o.connections;
	uint64_t prev_done = 0; /* when this connection last became free */

	/* Open early so that the first request finds the connection ready;
	 * a failure here is retried (and counted) at the first request. */
	if (conn_open(c, G.t0) < 0)
		c->fd = -1;

	for (uint64_t i = 0; !atomic_load_explicit(&G.stopping, memory_order_relaxed); i++) {
		uint64_t intended = G.t0 + (uint64_t)((double)(c->id + i * C) * G.period_ns);
		if (intended >= G.t_end)
			break;
		uint64_t now = now_ns();
		if (now < intended) {
			if (weft_sleep(intended - now) < 0)
				break; /* cancelled: the runtime is stopping */
		}
		uint64_t start_at = now_ns();
		if (start_at >= G.t_hard)
			break;
		/* The client's own lateness: from when it could have started
		 * (the intended time, or when the connection became free if
		 * that was later) to when it did. */
		uint64_t ready_at = intended > prev_done ? intended : prev_done;
		uint64_t client_lag = start_at > ready_at ? start_at - ready_at : 0;
		unsigned pi = (unsigned)((c->id + i) % G.o.npaths);
		int rc;
		uint64_t sent_at, deadline;
		bool keep = true;
		/* A kept-alive connection may have been closed by the server
		 * (idle timeout, request limit) just before this request: then
		 * the request is sent once more on a new connection, as HTTP
		 * clients do for idempotent requests. */
		for (int attempt = 0;; attempt++) {
			bool fresh = c->fd < 0;
			if (fresh && conn_open(c, now_ns() + G.timeout_ns) < 0) {
				rc = -(E_CONNECT + 1);
				break;
			}
			sent_at = now_ns();
			deadline = sent_at + G.timeout_ns;
			if (deadline > G.t_hard)
				deadline = G.t_hard;
			rc = send_all(c, G.req[pi], G.reqlen[pi], deadline);
			if (rc == 0)
				rc = read_response(c, deadline, &keep);
			if (rc != CLOSED_IDLE && (rc != -(E_SEND + 1) || fresh))
				break;
			conn_close(c);
			if (fresh || attempt > 0) {
				rc = -(E_RECV + 1);
				break;
			}
		}
		if (rc == -(E_CONNECT + 1)) {
			my_stats()->err[E_CONNECT]++;
			weft_sleep(CONNECT_RETRY_NS);
			prev_done = now_ns();
			continue;
		}
		uint64_t done_at = now_ns();
		prev_done = done_at;

		struct wstats *s = my_stats();
		s->sent++;
		if (sent_at > intended + LATE_NS)
			s->late++;
		if (rc < 0) {
			s->err[-rc - 1]++;
			conn_close(c);
			continue;
		}
		s->done++;
		if (rc < 200 || rc > 299)
			s->non2xx++;
		uint64_t lat = done_at - intended;
		if (!G.o.strict)
			lat -= client_lag;
		hist_record(&s->lat, lat);
		hist_record(&s->svc, done_at - sent_at);
		hist_record(&s->lag, client_lag);
		if (done_at > s->last_done)
			s->last_done = done_at;
		if (!keep)
			conn_close(c);
	}
	conn_close(c);
	atomic_fetch_sub_explicit(&G.live, 1, memory_order_release);
}

/* ---- options -------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: weft-load --rate R [options] [--url http://HOST:PORT/PATH]\n"
		"  --rate R          requests per second, all connections together (open loop)\n"
		"  --connections C   concurrent connections, one fiber each (default 16)\n"
		"  --duration D      seconds of sending (default 10)\n"
		"  --url URL         http://HOST[:PORT][/PATH]; sets host, port and a path\n"
		"  --host H          server address (default 127.0.0.1)\n"
		"  --port P          server port (default 8080)\n"
		"  --path P          request target; repeat for several (used in turn)\n"
		"  --timeout T       seconds a request may take (default 2); also the drain\n"
		"  --workers N       weft workers (default 1)\n"
		"  --io B            event backend: auto, uring or epoll (default auto)\n"
		"  --json FILE       also write the results as JSON (- : stdout; the table\n"
		"                    then goes to stderr)\n"
		"  --strict          count the client's own sending lag in the latency too\n"
		"                    (wrk2's rule; default: subtract it)\n");
}

static int parse_url(struct opts *o, const char *url)
{
	const char *p = url;
	if (strncmp(p, "http://", 7)) {
		fprintf(stderr, "weft-load: only http:// URLs: %s\n", url);
		return -EINVAL;
	}
	p += 7;
	const char *hend, *rest;
	if (*p == '[') { /* [v6]:port */
		hend = strchr(p, ']');
		if (!hend)
			return -EINVAL;
		p++;
		rest = hend + 1;
	} else {
		hend = p + strcspn(p, ":/");
		rest = hend;
	}
	if ((size_t)(hend - p) >= sizeof(o->host) || hend == p)
		return -EINVAL;
	memcpy(o->host, p, (size_t)(hend - p));
	o->host[hend - p] = '\0';
	if (*rest == ':') {
		rest++;
		size_t n = strspn(rest, "0123456789");
		if (n == 0 || n >= sizeof(o->port))
			return -EINVAL;
		memcpy(o->port, rest, n);
		o->port[n] = '\0';
		rest += n;
	} else {
		strcpy(o->port, "80");
	}
	if (*rest == '/' && o->npaths < MAX_PATHS)
		o->paths[o->npaths++] = rest;
	else if (*rest != '\0' && *rest != '/')
		return -EINVAL;
	return 0;
}

static int parse_double(const char *s, double *out, double lo)
{
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e || !(v >= lo))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{"rate", required_argument, 0, 'r'},
		{"connections", required_argument, 0, 'c'},
		{"duration", required_argument, 0, 'd'},
		{"url", required_argument, 0, 'u'},
		{"host", required_argument, 0, 'H'},
		{"port", required_argument, 0, 'p'},
		{"path", required_argument, 0, 'P'},
		{"timeout", required_argument, 0, 't'},
		{"workers", required_argument, 0, 'w'},
		{"io", required_argument, 0, 'i'},
		{"json", required_argument, 0, 'j'},
		{"strict", no_argument, 0, 's'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof(*o));
	o->rate = -1;
	o->connections = 16;
	o->duration = 10;
	o->timeout = 2;
	o->workers = 1;
	o->io = WEFT_IO_AUTO;
	strcpy(o->host, "127.0.0.1");
	strcpy(o->port, "8080");
	int ch;
	double d;
	while ((ch = getopt_long(argc, argv, "r:c:d:u:H:p:P:t:w:i:j:sh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (parse_double(optarg, &o->rate, 1e-9) < 0)
				goto bad;
			break;
		case 'c':
			if (parse_double(optarg, &d, 1) < 0 || d > 1000000)
				goto bad;
			o->connections = (unsigned)d;
			break;
		case 'd':
			if (parse_double(optarg, &o->duration, 1e-3) < 0)
				goto bad;
			break;
		case 't':
			if (parse_double(optarg, &o->timeout, 1e-3) < 0)
				goto bad;
			break;
		case 'w':
			if (parse_double(optarg, &d, 1) < 0 || d > 4096)
				goto bad;
			o->workers = (unsigned)d;
			break;
		case 'u':
			if (parse_url(o, optarg) < 0) {
				fprintf(stderr, "weft-load: bad --url '%s'\n", optarg);
				return -EINVAL;
			}
			snprintf(o->url, sizeof(o->url), "%s", optarg);
			break;
		case 'H':
			if (strlen(optarg) >= sizeof(o->host))
				goto bad;
			strcpy(o->host, optarg);
			break;
		case 'p':
			if (strlen(optarg) >= sizeof(o->port))
				goto bad;
			strcpy(o->port, optarg);
			break;
		case 'P':
			if (optarg[0] != '/' || o->npaths == MAX_PATHS)
				goto bad;
			o->paths[o->npaths++] = optarg;
			break;
		case 'i':
			if (!strcmp(optarg, "auto"))
				o->io = WEFT_IO_AUTO;
			else if (!strcmp(optarg, "uring"))
				o->io = WEFT_IO_URING;
			else if (!strcmp(optarg, "epoll"))
				o->io = WEFT_IO_EPOLL;
			else
				goto bad;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 's':
			o->strict = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		continue;
	bad:
		for (const struct option *l = lopts; l->name; l++)
			if (l->val == ch)
				fprintf(stderr, "weft-load: bad value for --%s: '%s'\n",
					l->name, optarg);
		usage(stderr);
		return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "weft-load: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->rate <= 0) {
		fprintf(stderr, "weft-load: --rate is required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (o->npaths == 0)
		o->paths[o->npaths++] = "/";
	if (!o->url[0])
		snprintf(o->url, sizeof(o->url), "http://%s:%s%s", o->host, o->port, o->paths[0]);
	return 0;
}

static int resolve(const struct opts *o)
{
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int rc = getaddrinfo(o->host, o->port, &hints, &res);
	if (rc) {
		fprintf(stderr, "weft-load: %s:%s: %s\n", o->host, o->port, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(&G.addr, res->ai_addr, res->ai_addrlen);
	G.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int build_requests(const struct opts *o)
{
	bool v6 = strchr(o->host, ':') != NULL;
	for (unsigned i = 0; i < o->npaths; i++) {
		int n = asprintf(&G.req[i], "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
					    "User-Agent: weft-load\r\n\r\n",
				 o->paths[i], v6 ? "[" : "", o->host, v6 ? "]" : "", o->port);
		if (n < 0)
			return -ENOMEM;
		G.reqlen[i] = (size_t)n;
	}
	return 0;
}

/* ---- report --------------------------------------------------------- */

static const char *fmt_ns(char *buf, size_t n, uint64_t ns)
{
	if (ns < 1000000)
		snprintf(buf, n, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.3fs", (double)ns / 1e9);
	return buf;
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99_9"};

static void print_row(FILE *out, const char *name, const hist_t *h)
{
	char b[32];
	fprintf(out, "  %-10s", name);
	for (unsigned i = 0; i < 4; i++)
		fprintf(out, " %10s", fmt_ns(b, sizeof(b), hist_percentile(h, pcts[i])));
	fprintf(out, " %10s", fmt_ns(b, sizeof(b), h->max));
	fprintf(out, " %10s\n", fmt_ns(b, sizeof(b), (uint64_t)hist_mean(h)));
}

static void json_hist(FILE *out, const char *name, const hist_t *h)
{
	fprintf(out, "\"%s\":{", name);
	for (unsigned i = 0; i < 4; i++)
		fprintf(out, "\"%s\":%.1f,", pct_names[i], (double)hist_percentile(h, pcts[i]) / 1e3);
	fprintf(out, "\"max\":%.1f,\"mean\":%.1f}", (double)h->max / 1e3, hist_mean(h) / 1e3);
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

struct totals {
	struct wstats s;
	uint64_t scheduled; /* intended sends before the end: ceil(rate * duration) */
	uint64_t errors;
	double elapsed_s;
	double throughput;
	const char *io;
};

static void report_table(FILE *out, const struct totals *t)
{
	const struct opts *o = &G.o;
	fprintf(out, "weft-load %s: rate %.0f/s, %u connections, %.1f s, %u worker%s (%s)\n",
		o->url, o->rate, o->connections, o->duration, o->workers,
		o->workers == 1 ? "" : "s", t->io);
	if (o->npaths > 1) {
		fprintf(out, "  paths:");
		for (unsigned i = 0; i < o->npaths; i++)
			fprintf(out, " %s", o->paths[i]);
		fputc('\n', out);
	}
	fprintf(out, "  %llu scheduled, %llu sent, %llu completed, %llu non-2xx, %llu errors",
		(unsigned long long)t->scheduled, (unsigned long long)t->s.sent,
		(unsigned long long)t->s.done,
		(unsigned long long)t->s.non2xx, (unsigned long long)t->errors);
	if (t->errors) {
		const char *sep = " (";
		for (unsigned i = 0; i < E_COUNT; i++) {
			if (t->s.err[i]) {
				fprintf(out, "%s%s %llu", sep, err_names[i], (unsigned long long)t->s.err[i]);
				sep = ", ";
			}
		}
		fputc(')', out);
	}
	fprintf(out, "\n  throughput %.1f req/s (target %.1f); "
		     "%llu sends more than 1 ms behind schedule\n",
		t->throughput, o->rate, (unsigned long long)t->s.late);
	fprintf(out, "  %-10s %10s %10s %10s %10s %10s %10s\n", "", "p50", "p90", "p99",
		"p99.9", "max", "mean");
	print_row(out, "latency", &t->s.lat);
	print_row(out, "service", &t->s.svc);
	print_row(out, "client lag", &t->s.lag);
	fprintf(out, "  latency: from each request's intended send time (corrected for coordinated\n"
		     "  omission)%s; service: from its actual send, as a closed-loop\n"
		     "  client sees it; client lag: the client's own lateness in sending.\n",
		o->strict ? "" : ", less client lag");
	if ((double)o->connections / o->rate < (double)hist_percentile(&t->s.svc, 50) / 1e9)
		fprintf(out, "  warning: %u connections cannot keep %.0f req/s at this service time;\n"
			     "  raise --connections\n", o->connections, o->rate);
}

static void report_json(FILE *out, const struct totals *t)
{
	const struct opts *o = &G.o;
	fprintf(out, "{\"tool\":\"weft-load\",\"url\":");
	json_str(out, o->url);
	fprintf(out, ",\"paths\":[");
	for (unsigned i = 0; i < o->npaths; i++) {
		if (i)
			fputc(',', out);
		json_str(out, o->paths[i]);
	}
	fprintf(out, "],\"rate\":%.3f,\"connections\":%u,\"duration_s\":%.3f,"
		     "\"workers\":%u,\"io\":\"%s\",\"timeout_s\":%.3f,\"strict\":%s,",
		o->rate, o->connections, o->duration, o->workers, t->io, o->timeout,
		o->strict ? "true" : "false");
	fprintf(out, "\"scheduled\":%llu,\"sent\":%llu,\"completed\":%llu,\"non2xx\":%llu,"
		     "\"late\":%llu,\"errors\":%llu,\"error_kinds\":{",
		(unsigned long long)t->scheduled, (unsigned long long)t->s.sent,
		(unsigned long long)t->s.done,
		(unsigned long long)t->s.non2xx, (unsigned long long)t->s.late,
		(unsigned long long)t->errors);
	for (unsigned i = 0; i < E_COUNT; i++)
		fprintf(out, "%s\"%s\":%llu", i ? "," : "", err_names[i],
			(unsigned long long)t->s.err[i]);
	fprintf(out, "},\"elapsed_s\":%.3f,\"throughput_rps\":%.1f,", t->elapsed_s, t->throughput);
	json_hist(out, "latency_us", &t->s.lat);
	fputc(',', out);
	json_hist(out, "service_us", &t->s.svc);
	fputc(',', out);
	json_hist(out, "client_lag_us", &t->s.lag);
	fprintf(out, "}\n");
}

/* ---- main ----------------------------------------------------------- */

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "weft-load: the runtime did not stop in time; giving up\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	_exit(3);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct opts *o = &G.o;
	if (parse_opts(o, argc, argv) < 0)
		return 2;
	if (resolve(o) < 0 || build_requests(o) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	/* Sleeps end when the schedule says, not up to 50 µs later (the
	 * default timer slack); worker threads inherit this. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = o->workers;
	cfg.io = o->io;
	/* Connection fibers only keep a few frames. */
	cfg.fiber_stack_size = 64 * 1024;
	weft_runtime_t *rt;
	int rc = weft_runtime_create(&rt, &cfg);
	if (rc < 0) {
		fprintf(stderr, "weft-load: weft_runtime_create: %s\n", weft_strerror(rc));
		return 1;
	}
	struct totals t;
	memset(&t, 0, sizeof(t));
	hist_init(&t.s.lat);
	hist_init(&t.s.svc);
	hist_init(&t.s.lag);
	t.io = weft_runtime_io_backend(rt) == WEFT_IO_URING ? "io_uring" : "epoll";

	G.nstats = weft_runtime_workers(rt) + 1; /* + a slot for off-worker use */
	G.stats = aligned_alloc(64, sizeof(struct wstats) * G.nstats);
	struct conn *conns = calloc(o->connections, sizeof(*conns));
	if (!G.stats || !conns) {
		fprintf(stderr, "weft-load: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < G.nstats; i++) {
		memset(&G.stats[i], 0, sizeof(G.stats[i]));
		hist_init(&G.stats[i].lat);
		hist_init(&G.stats[i].svc);
		hist_init(&G.stats[i].lag);
	}

	G.period_ns = 1e9 / o->rate;
	G.timeout_ns = (uint64_t)(o->timeout * 1e9);
	uint64_t warmup = 100000000ull + 100000ull * o->connections; /* 100 ms + 0.1 ms/conn */
	uint64_t start = now_ns();
	G.t0 = start + warmup;
	G.t_end = G.t0 + (uint64_t)(o->duration * 1e9);
	G.t_hard = G.t_end + G.timeout_ns;

	unsigned started = 0;
	for (unsigned i = 0; i < o->connections; i++) {
		conns[i].id = i;
		conns[i].fd = -1;
		atomic_fetch_add_explicit(&G.live, 1, memory_order_relaxed);
		rc = weft_go(rt, conn_main, &conns[i]);
		if (rc < 0) {
			atomic_fetch_sub_explicit(&G.live, 1, memory_order_relaxed);
			fprintf(stderr, "weft-load: weft_go: %s (%u of %u connections started)\n",
				weft_strerror(rc), started, o->connections);
			break;
		}
		started++;
	}

	/* Wait for the fibers, never past the hard deadline.  Pairs with the
	 * release decrement at the end of conn_main. */
	while (atomic_load_explicit(&G.live, memory_order_acquire) > 0 && now_ns() < G.t_hard)
		sleep_ns(10000000);
	atomic_store(&G.stopping, 1);
	signal(SIGALRM, on_alarm);
	alarm(10);
	weft_runtime_destroy(rt); /* cancels what is still pending */
	alarm(0);

	for (unsigned i = 0; i < G.nstats; i++) {
		struct wstats *s = &G.stats[i];
		hist_merge(&t.s.lat, &s->lat);
		hist_merge(&t.s.svc, &s->svc);
		hist_merge(&t.s.lag, &s->lag);
		t.s.sent += s->sent;
		t.s.done += s->done;
		t.s.non2xx += s->non2xx;
		t.s.late += s->late;
		for (unsigned k = 0; k < E_COUNT; k++)
			t.s.err[k] += s->err[k];
		if (s->last_done > t.s.last_done)
			t.s.last_done = s->last_done;
	}
	for (unsigned k = 0; k < E_COUNT; k++)
		t.errors += t.s.err[k];
	/* Request k (k = c + i*C over all connections) is due at k/R: those
	 * with k/R < duration, the same bound conn_main uses. */
	double k = o->duration * 1e9 / G.period_ns;
	t.scheduled = (uint64_t)k;
	while ((double)t.scheduled * G.period_ns < o->duration * 1e9)
		t.scheduled++;
	uint64_t last = t.s.last_done > G.t_end ? t.s.last_done : G.t_end;
	t.elapsed_s = (double)(last - G.t0) / 1e9;
	t.throughput = (double)t.s.done / t.elapsed_s;

	bool json_stdout = o->json && !strcmp(o->json, "-");
	report_table(json_stdout ? stderr : stdout, &t);
	if (o->json) {
		FILE *f = json_stdout ? stdout : fopen(o->json, "w");
		if (!f) {
			fprintf(stderr, "weft-load: %s: %s\n", o->json, strerror(errno));
			return 1;
		}
		report_json(f, &t);
		if (!json_stdout && fclose(f) != 0) {
			fprintf(stderr, "weft-load: %s: write failed\n", o->json);
			return 1;
		}
	}
	for (unsigned i = 0; i < o->npaths; i++)
		free(G.req[i]);
	free(conns);
	free(G.stats);
	return t.s.done > 0 ? 0 : 1;
}
