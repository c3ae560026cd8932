/*
 * pingpong: round-trip latency of a message bounced over an AF_UNIX
 * socketpair, between two weft fibers (weft_send/weft_recv) on each
 * backend, and between two plain threads doing blocking write/read as the
 * baseline, in the same run.  Per repetition every runtime makes --trips
 * round trips (after --warm-trips untimed ones), each timed on its own
 * with clock_gettime around send + receive of the answer; the runtimes'
 * turns rotate from one repetition to the next.
 *
 * One line per runtime (pthread, weft-uring, weft-epoll) and worker count
 * (pthread: 2 = its two threads):
 *   median_s  the median over repetitions of the per-repetition p50 round trip
 *   min_s, max_s  the smallest and largest per-repetition p50
 *   result    p99_s=<median of the per-repetition p99>;vs_pthread=<p50 ratio>
 *   check     ok when every byte came back as sent and no call failed
 *
 *   pingpong [--size 64] [--trips 20000] [--warm-trips 2000]
 *            [--io uring,epoll] [--workers 1,2] [--reps 5] [--no-header]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/socket.h>

#include "bench_io.h"

static const char *own_usage = "[--size 64] [--trips 20000] [--warm-trips 2000] [--io uring,epoll] ";

#define MAX_SIZE 16384 /* fibers keep two buffers on their stacks */

struct pp {
	int fd[2];
	size_t size;
	long trips, warm;
	double *samples; /* trips round-trip times, seconds */
	int bad;         /* payload mismatch or short count */
	int err;         /* first error */
	struct bench_latch done;
};

/* Move exactly n bytes: 0, or a negative errno (-EPIPE at end of file). */
typedef int (*xfer_fn)(int fd, unsigned char *b, size_t n);

/* Echo side: read a message, send it back, warm + trips times. */
static void echo_loop(struct pp *pp, xfer_fn in, xfer_fn out, unsigned char *buf, const char *what)
{
	int rc;

	for (long i = 0; i < pp->warm + pp->trips; i++) {
		if ((rc = in(pp->fd[1], buf, pp->size)) != 0 || (rc = out(pp->fd[1], buf, pp->size)) != 0) {
			bench_fail(what, rc);
			pp->bad = 1;
			break;
		}
	}
}

/* Client side: send a message, read the echo, time each round trip. */
static void client_loop(struct pp *pp, xfer_fn out, xfer_fn in, unsigned char *obuf, unsigned char *ibuf,
                        const char *what)
{
	int rc;

	for (long i = 0; i < pp->warm + pp->trips; i++) {
		memset(obuf, (int)(i & 0xff), pp->size);
		uint64_t t0 = bench_ns();
		if ((rc = out(pp->fd[0], obuf, pp->size)) != 0 || (rc = in(pp->fd[0], ibuf, pp->size)) != 0) {
			bench_fail(what, rc);
			pp->bad = 1;
			break;
		}
		uint64_t t1 = bench_ns();
		if (memcmp(ibuf, obuf, pp->size))
			pp->bad = 1;
		if (i >= pp->warm)
			pp->samples[i - pp->warm] = (double)(t1 - t0) * 1e-9;
	}
}

/* ------------------------------------------------------------ weft fibers */
/* weft_send/weft_recv (not weft_write_all/weft_read_full, which read
 * with READ): the socket calls the baseline threads make too. */
static int fib_send_all(int fd, unsigned char *b, size_t n)
{
	while (n) {
		ssize_t r = weft_send(fd, b, n, 0);
		if (r <= 0)
			return r < 0 ? (int)r : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int fib_recv_all(int fd, unsigned char *b, size_t n)
{
	while (n) {
		ssize_t r = weft_recv(fd, b, n, 0);
		if (r <= 0)
			return r < 0 ? (int)r : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void weft_echo_fiber(void *p)
{
	struct pp *pp = p;
	unsigned char buf[MAX_SIZE];

	echo_loop(pp, fib_recv_all, fib_send_all, buf, "echo fiber send/recv");
	bench_latch_done(&pp->done);
}

static void weft_client_fiber(void *p)
{
	struct pp *pp = p;
	unsigned char out[MAX_SIZE], in[MAX_SIZE];

	client_loop(pp, fib_send_all, fib_recv_all, out, in, "client fiber send/recv");
	bench_latch_done(&pp->done);
}

/* --------------------------------------------------------- plain threads */
static int th_write_all(int fd, unsigned char *b, size_t n)
{
	while (n) {
		ssize_t r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int th_read_all(int fd, unsigned char *b, size_t n)
{
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *th_echo(void *p)
{
	static unsigned char buf[MAX_SIZE];

	echo_loop(p, th_read_all, th_write_all, buf, "echo thread read/write");
	return NULL;
}

static void th_client(struct pp *pp)
{
	static unsigned char out[MAX_SIZE], in[MAX_SIZE];

	client_loop(pp, th_write_all, th_read_all, out, in, "client thread read/write");
}

/* ------------------------------------------------------------------ driver */
static int pp_open(struct pp *pp)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pp->fd) != 0) {
		bench_fail("socketpair", -errno);
		return -1;
	}
	pp->bad = 0;
	return 0;
}

static void pp_close(struct pp *pp)
{
	close(pp->fd[0]);
	close(pp->fd[1]);
}

/* One repetition on rt (NULL: the two plain threads).  0 or -1. */
static int pp_once(struct pp *pp, weft_runtime_t *rt)
{
	int rc;
	if (pp_open(pp) != 0)
		return -1;
	if (!rt) {
		pthread_t th;
		if ((rc = pthread_create(&th, NULL, th_echo, pp)) != 0) {
			bench_fail("pthread_create", -rc);
			pp_close(pp);
			return -1;
		}
		th_client(pp);
		pthread_join(th, NULL);
	} else {
		bench_latch_init(&pp->done, 2);
		if ((rc = weft_go(rt, weft_echo_fiber, pp)) != 0) {
			bench_fail("weft_go", rc);
			pp_close(pp);
			return -1;
		}
		if ((rc = weft_go(rt, weft_client_fiber, pp)) != 0) {
			bench_fail("weft_go", rc);
			/* unblock the echo fiber */
			shutdown(pp->fd[0], SHUT_RDWR);
			bench_latch_wait(&pp->done, 10.0);
			pp_close(pp);
			return -1;
		}
		if (bench_latch_wait(&pp->done, 300.0) != 0) {
			bench_fail("pingpong (timed out after 300 s)", -ETIMEDOUT);
			exit(1);
		}
		bench_latch_destroy(&pp->done);
	}
	pp_close(pp);
	return pp->bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	long size = 64, trips = 20000, warm = 2000;

	bench_opts_init(&o, "1,2", 5);
	bench_io_parse(&io, "uring,epoll");
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage) ||
		    bench_io_arg(&io, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--size"))
			size = bench_optlong(argc, argv, &i, own_usage, 1, MAX_SIZE);
		else if (!strcmp(argv[i], "--trips"))
			trips = bench_optlong(argc, argv, &i, own_usage, 1, 10000000);
		else if (!strcmp(argv[i], "--warm-trips"))
			warm = bench_optlong(argc, argv, &i, own_usage, 0, 10000000);
		else
			bench_usage_exit(argv[0], own_usage);
	}
	if (!o.warmup)
		warm = 0;
	bench_print_header(&o);

	/* Slot 0: the plain threads; then (workers, backend) pairs. */
	int nslots = 1 + o.nworkers * io.n;
	weft_runtime_t **rts = calloc((size_t)nslots, sizeof *rts);
	double **p50 = calloc((size_t)nslots, sizeof *p50);
	double **p99 = calloc((size_t)nslots, sizeof *p99);
	int *ok = calloc((size_t)nslots, sizeof *ok);
	struct pp pp;
	memset(&pp, 0, sizeof pp);
	pp.size = (size_t)size;
	pp.trips = trips;
	pp.warm = warm;
	pp.samples = malloc((size_t)trips * sizeof *pp.samples);
	if (!rts || !p50 || !p99 || !ok || !pp.samples) {
		fprintf(stderr, "pingpong: out of memory\n");
		return 1;
	}
	for (int s = 0; s < nslots; s++) {
		p50[s] = calloc((size_t)o.reps, sizeof **p50);
		p99[s] = calloc((size_t)o.reps, sizeof **p99);
		ok[s] = 1;
		if (!p50[s] || !p99[s])
			return 1;
		if (s > 0) {
			int wi = (s - 1) / io.n, b = (s - 1) % io.n;
			rts[s] = bench_io_create(o.workers[wi], io.io[b], 0);
			if (!rts[s])
				ok[s] = -1; /* not available: no line */
		}
	}
	for (int k = 0; k < o.reps; k++) {
		for (int ss = 0; ss < nslots; ss++) {
			int s = (ss + k) % nslots;
			if (ok[s] < 0)
				continue;
			if (pp_once(&pp, rts[s]) != 0)
				ok[s] = 0;
			p50[s][k] = bench_percentile(pp.samples, (int)trips, 50);
			p99[s][k] = bench_percentile(pp.samples, (int)trips, 99);
		}
	}
	char param[96], result[128];
	double base = bench_median(p50[0], o.reps);
	snprintf(param, sizeof param, "size=%ld;trips=%ld", size, trips);
	for (int s = 0; s < nslots; s++) {
		double m;
		if (ok[s] < 0)
			continue;
		m = bench_median(p50[s], o.reps);
		snprintf(result, sizeof result, "p99_s=%.9f;vs_pthread=%.3f", bench_median(p99[s], o.reps),
		         base > 0 ? m / base : 0.0);
		if (s == 0)
			bench_report("pingpong", "pthread", 2, param, p50[s], o.reps, result, ok[s]);
		else
			bench_report("pingpong", bench_io_label(io.io[(s - 1) % io.n]),
			             o.workers[(s - 1) / io.n], param, p50[s], o.reps, result,
			             ok[s] && !bench_failed());
	}
	for (int s = 1; s < nslots; s++)
		bench_weft_destroy(rts[s]);
	return bench_failed() ? 1 : 0;
}
