/*
 * httpd.h: the core of weft-httpd, an HTTP/1.1 server on weft fibers.
 *
 * Linked into the weft-httpd command (tools/weft_httpd.c) and into the test
 * suite (tests/test_http.c), which starts it in-process on an ephemeral
 * port.  Requests are parsed with llhttp (see httpd.c for why).
 *
 * Model.  One multishot accept (WEFT_OP_ACCEPT_MULTI) hands each new
 * connection to a callback, which gives it a fiber of its own (weft_go)
 * that reads with a timeout, parses every complete request in what it has
 * read, answers them in order (pipelining) and sends the answers batched.  Connections are kept alive unless the client asks
 * otherwise.  CPU work (/work, /fanout) runs on the worker that runs the
 * fiber; /fanout spreads its tasks with weft_spawn.
 *
 * Routes (GET and HEAD; other methods on these paths: 405):
 *   /                          "Hello, World!"
 *   /work?us=N                 burn about N us of CPU (calibrated at start)
 *   /fanout?tasks=K&us=N       K fork-join tasks of N us each, then answer
 *   /sleep?ms=N                wait N ms on a weft timer
 *   /file?path=P[&bytes=N]     the first N bytes (default: all, at most
 *                              max_file_bytes) of P under the root
 *                              directory; P must be relative, without
 *                              "..", and must not leave the root through a
 *                              symlink (403 otherwise)
 *   anything else              404
 * Bad parameters: 400 (the connection stays open).  A malformed request:
 * 400 and close.  A request head over header_limit: 431 and close.  A client
 * that sends nothing for idle_timeout_ms (between requests), takes longer
 * than that to send a whole request (from its first byte), or stops reading
 * an answer for that long: closed (408 first when a request was under way).
 * Upgrade and CONNECT requests are answered as plain requests, then the
 * connection is closed.  A /sleep whose client resets is cut short.
 *
 * Threads.  httpd_start and httpd_stop are called off rt's workers (from
 * main, or the test thread).  One server per httpd_start; several may run
 * on one runtime.
 */
#ifndef WEFT_HTTPD_H
#define WEFT_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "weft.h"

/* Parameter bounds (a request outside them gets 400). */
#define HTTPD_MAX_WORK_US 1000000u       /* /work: 1 s of CPU */
#define HTTPD_MAX_FANOUT_TASKS 256u      /* /fanout: tasks */
#define HTTPD_MAX_FANOUT_US 100000u      /* /fanout: us per task */
#define HTTPD_MAX_FANOUT_TOTAL_US 2000000u /* /fanout: tasks * us */
#define HTTPD_MAX_SLEEP_MS 60000u        /* /sleep */

struct httpd_config {
	/* Address to listen on (numeric or a name getaddrinfo resolves);
	 * NULL = "127.0.0.1". */
	const char *host;
	/* Port; 0 = an ephemeral one (httpd_start returns it). */
	int port;
	/* listen() backlog; 0 = 4096 (the kernel caps it at somaxconn). */
	int backlog;
	/* Directory /file serves from; NULL = the route answers 404. */
	const char *root;
	/* Largest request head (request line and headers) in bytes; 0 =
	 * 8192.  Accepted range 256 .. 1 MiB. */
	size_t header_limit;
	/* Idle/stall timeout in milliseconds (see above); 0 = 10000. */
	unsigned idle_timeout_ms;
	/* Largest /file answer in bytes; 0 = 1 MiB. */
	size_t max_file_bytes;
	/* Testing: resolve /file paths with the realpath() fallback even
	 * where openat2(RESOLVE_BENEATH) is available. */
	int no_openat2;
};

/* Counters (monotonic except active). */
struct httpd_stats {
	uint64_t accepted;     /* connections accepted */
	uint64_t active;       /* connections open now */
	uint64_t requests;     /* requests answered (any status) */
	uint64_t bad_requests; /* 400 for malformed requests (connection closed) */
	uint64_t too_large;    /* 431 */
	uint64_t timeouts;     /* connections closed for a stall or idleness */
	uint64_t io_errors;    /* connections ended by a recv/send error (reset, ...) */
	uint64_t accept_backoffs; /* accept failed for lack of fds/memory: backed off */
};

struct httpd;

/* Defaults (see the fields). */
void httpd_config_init(struct httpd_config *cfg);

/*
 * Bind, listen and start serving on rt.  Returns the bound port (> 0) and
 * sets *out, or a negative errno: -EINVAL (bad argument or config value,
 * root not a directory: -ENOTDIR), the socket/bind/listen error, the
 * getaddrinfo failure as -EADDRNOTAVAIL, -ENOMEM, or weft_go's error.
 * Off rt's workers only (-EDEADLK on one).
 */
int httpd_start(weft_runtime_t *rt, const struct httpd_config *cfg, struct httpd **out);

/* The bound port. */
int httpd_port(const struct httpd *h);

/* A snapshot of the counters. */
void httpd_get_stats(const struct httpd *h, struct httpd_stats *st);

/*
 * Stop: close the listener, end every connection (operations in progress
 * are cancelled, answers in progress are cut), wait until every fiber of
 * the server has returned, close every descriptor and free h.  Returns 0,
 * -EINVAL (h NULL) or -EDEADLK when called on one of rt's workers (nothing
 * is done then).  The runtime keeps running.
 */
int httpd_stop(struct httpd *h);

/* Microseconds of CPU burnt by one /work?us=1 unit, measured: the
 * calibration's loop iterations per microsecond. */
double httpd_burn_rate(void);

/* Burn about us microseconds of CPU on the calling thread. */
void httpd_burn_us(uint64_t us);

#endif /* WEFT_HTTPD_H */
