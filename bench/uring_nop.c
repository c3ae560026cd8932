/*
 * uring_nop: throughput of tiny operations through weft's event layer,
 * per worker, on each backend, with raw liburing IORING_OP_NOP on one
 * thread in the same run as the ceiling.  weft has no NOP opcode; its
 * nearest "no work" operations are:
 *
 *   poll  WEFT_OP_POLL for POLLIN on an eventfd whose counter is never
 *         drained (always ready: the kernel completes it at once)
 *   read  WEFT_OP_READ of 8 bytes from /dev/zero (done inline by the kernel)
 *
 * Lines (median_s/min_s/max_s: seconds for `ops` operations over the
 * repetitions; result: ops_per_s= of the median, per worker for weft, and
 * vs_raw= that rate over the raw batch-32 NOP rate):
 *   nop_raw   liburing, one thread, IORING_OP_NOP; batch=32: 32 SQEs per
 *             io_uring_submit_and_wait, batch=1: one submit+wait per NOP
 *             (a system call each: the floor of any one-at-a-time ring use)
 *   op_fiber  weft: --inflight fibers per worker, each a loop of
 *             weft_op_run (one operation in flight per fiber)
 *   op_cb     weft: --inflight callback chains per worker; each callback
 *             weft_op_submits the same op again until its share is done
 * Weft's time runs from the first operation's start to the last one's end
 * (clock_gettime inside the fibers and callbacks).
 *
 *   uring_nop [--ops 400000] [--kind poll,read] [--mode fiber,cb]
 *             [--inflight 16] [--io uring,epoll] [--workers 1,2]
 *             [--reps 5] [--warmup 1] [--no-header]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "bench_io.h"

static const char *own_usage =
	"[--ops N] [--kind poll,read] [--mode fiber,cb] [--inflight N] [--io uring,epoll] ";

/* ---------------------------------------------------------------- raw ring */
static double raw_nop(long ops, unsigned batch)
{
	struct io_uring ring;
	struct io_uring_cqe *cqes[64];
	int rc;
	long done = 0;
	double t0, t1;

	if ((rc = io_uring_queue_init(256, &ring, 0)) != 0) {
		fprintf(stderr, "uring_nop: io_uring_queue_init: %s\n", strerror(-rc));
		return -1;
	}
	t0 = bench_now();
	while (done < ops) {
		unsigned b = (unsigned)(ops - done < (long)batch ? ops - done : (long)batch);
		for (unsigned i = 0; i < b; i++)
			io_uring_prep_nop(io_uring_get_sqe(&ring));
		if ((rc = io_uring_submit_and_wait(&ring, b)) < 0) {
			bench_fail("io_uring_submit_and_wait", rc);
			break;
		}
		unsigned got = 0;
		while (got < b) {
			unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 64);
			if (!n) {
				struct io_uring_cqe *c;
				if ((rc = io_uring_wait_cqe(&ring, &c)) != 0) {
					bench_fail("io_uring_wait_cqe", rc);
					break;
				}
				continue;
			}
			io_uring_cq_advance(&ring, n);
			got += n;
		}
		done += b;
	}
	t1 = bench_now();
	io_uring_queue_exit(&ring);
	return t1 - t0;
}

/* --------------------------------------------------------------------- weft */
enum { K_POLL = 0, K_READ = 1 };
static const char *kind_name[] = { "poll", "read" };

struct run {
	int kind, efd, zfd;
	long per; /* operations per fiber / chain */
	_Atomic uint64_t t_first, t_last;
	struct bench_latch done;
	weft_runtime_t *rt;
	int bad;
};

struct chain {
	weft_op_t op;
	struct run *r;
	long left;
	uint64_t zbuf;
};

static void stamp_first(struct run *r, uint64_t t)
{
	uint64_t cur = atomic_load_explicit(&r->t_first, memory_order_relaxed);
	while (t < cur && !atomic_compare_exchange_weak(&r->t_first, &cur, t)) {
	}
}

static void stamp_last(struct run *r, uint64_t t)
{
	uint64_t cur = atomic_load_explicit(&r->t_last, memory_order_relaxed);
	while (t > cur && !atomic_compare_exchange_weak(&r->t_last, &cur, t)) {
	}
}

static void op_prep(struct chain *c)
{
	weft_op_t *op = &c->op;
	weft_op_fn cb = op->cb;
	void *data = op->data;
	memset(op, 0, sizeof *op);
	op->cb = cb;
	op->data = data;
	if (c->r->kind == K_POLL) {
		op->opcode = WEFT_OP_POLL;
		op->fd = c->r->efd;
		op->flags = POLLIN;
	} else {
		op->opcode = WEFT_OP_READ;
		op->fd = c->r->zfd;
		op->buf = &c->zbuf;
		op->len = sizeof c->zbuf;
		op->off = -1;
	}
}

static int op_ok(const struct chain *c)
{
	if (c->r->kind == K_POLL)
		return c->op.result >= 0 && (c->op.result & POLLIN);
	return c->op.result == (ssize_t)sizeof c->zbuf;
}

static void op_fiber(void *p)
{
	struct chain *c = p;
	stamp_first(c->r, bench_ns());
	for (long i = 0; i < c->left; i++) {
		op_prep(c);
		weft_op_run(&c->op);
		if (!op_ok(c)) {
			bench_fail("weft_op_run", (int)c->op.result);
			c->r->bad = 1;
			break;
		}
	}
	stamp_last(c->r, bench_ns());
	bench_latch_done(&c->r->done);
}

static void op_cb(weft_op_t *op)
{
	struct chain *c = op->data;
	int rc;
	if (!op_ok(c)) {
		bench_fail("op callback result", (int)op->result);
		c->r->bad = 1;
		c->left = 1;
	}
	if (--c->left > 0) {
		op_prep(c);
		if ((rc = weft_op_submit(c->r->rt, &c->op)) == 0)
			return;
		bench_fail("weft_op_submit", rc);
		c->r->bad = 1;
	}
	stamp_last(c->r, bench_ns());
	bench_latch_done(&c->r->done);
}

/* Starts the chains from inside a worker so that they spread as the
 * runtime spreads fibers. */
static void cb_starter(void *p)
{
	struct chain *c = p;
	int rc;
	stamp_first(c->r, bench_ns());
	op_prep(c);
	if ((rc = weft_op_submit(c->r->rt, &c->op)) != 0) {
		bench_fail("weft_op_submit", rc);
		c->r->bad = 1;
		bench_latch_done(&c->r->done);
	}
}

/* One timed run; seconds, or -1. */
static double weft_ops(weft_runtime_t *rt, int kind, int cb, long nchains, long per, int efd,
                       int zfd)
{
	struct run r;
	struct chain *ch = calloc((size_t)nchains, sizeof *ch);
	int rc;
	if (!ch)
		return -1;
	memset(&r, 0, sizeof r);
	r.kind = kind;
	r.efd = efd;
	r.zfd = zfd;
	r.per = per;
	r.rt = rt;
	atomic_store(&r.t_first, UINT64_MAX);
	atomic_store(&r.t_last, 0);
	bench_latch_init(&r.done, nchains);
	for (long i = 0; i < nchains; i++) {
		ch[i].r = &r;
		ch[i].left = per;
		ch[i].op.cb = op_cb;
		ch[i].op.data = &ch[i];
		/* Both modes start from a fiber; the cb mode's fiber only
		 * submits the first op and returns. */
		if ((rc = weft_go(rt, cb ? cb_starter : op_fiber, &ch[i])) != 0) {
			bench_fail("weft_go", rc);
			r.bad = 1;
			bench_latch_done(&r.done);
		}
	}
	if (bench_latch_wait(&r.done, 300.0) != 0) {
		bench_fail("uring_nop (timed out after 300 s)", -ETIMEDOUT);
		exit(1);
	}
	bench_latch_destroy(&r.done);
	free(ch);
	if (r.bad)
		return -1;
	return (double)(atomic_load(&r.t_last) - atomic_load(&r.t_first)) * 1e-9;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_io_list io;
	long ops = 400000, inflight = 16;
	int kinds = 3, modes = 3; /* bit masks */
	double t[BENCH_MAX_REPS];
	char param[160], result[160];

	bench_opts_init(&o, "1,2", 5);
	bench_io_parse(&io, "uring,epoll");
	for (int i = 1; i < argc; i++) {
		if (bench_common_arg(&o, argc, argv, &i, own_usage) ||
		    bench_io_arg(&io, argc, argv, &i, own_usage))
			continue;
		if (!strcmp(argv[i], "--ops")) {
			ops = bench_optlong(argc, argv, &i, own_usage, 1, 1L << 40);
		} else if (!strcmp(argv[i], "--inflight")) {
			inflight = bench_optlong(argc, argv, &i, own_usage, 1, 100000);
		} else if (!strcmp(argv[i], "--kind") || !strcmp(argv[i], "--mode")) {
			int is_kind = !strcmp(argv[i], "--kind"), m = 0;
			const char *s = bench_optval(argc, argv, &i, own_usage);
			const char *a = is_kind ? "poll" : "fiber", *b = is_kind ? "read" : "cb";
			char buf[64], *tok, *save;
			snprintf(buf, sizeof buf, "%s", s);
			for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (!strcmp(tok, a))
					m |= 1;
				else if (!strcmp(tok, b))
					m |= 2;
				else
					bench_usage_exit(argv[0], own_usage);
			}
			if (!m)
				bench_usage_exit(argv[0], own_usage);
			*(is_kind ? &kinds : &modes) = m;
		} else {
			bench_usage_exit(argv[0], own_usage);
		}
	}
	bench_print_header(&o);

	/* The ceiling: raw NOPs on one thread. */
	double raw32 = 0;
	static const unsigned batches[] = { 32, 1 };
	for (int bi = 0; bi < 2; bi++) {
		int ok = 1;
		if (o.warmup)
			raw_nop(ops / 10 + 1, batches[bi]);
		for (int k = 0; k < o.reps; k++)
			if ((t[k] = raw_nop(ops, batches[bi])) < 0)
				ok = 0;
		if (!ok) {
			fprintf(stderr, "uring_nop: no raw io_uring here; nop_raw skipped\n");
			break;
		}
		double rate = (double)ops / bench_median(t, o.reps);
		if (batches[bi] == 32)
			raw32 = rate;
		snprintf(param, sizeof param, "batch=%u;ops=%ld", batches[bi], ops);
		snprintf(result, sizeof result, "ops_per_s=%.0f;vs_raw=%.3f", rate,
		         raw32 > 0 ? rate / raw32 : 0.0);
		bench_report("nop_raw", "liburing", 1, param, t, o.reps, result, !bench_failed());
	}

	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	int zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (efd < 0 || zfd < 0) {
		bench_fail("eventfd or /dev/zero", -errno);
		return 1;
	}
	for (int wi = 0; wi < o.nworkers; wi++) {
		unsigned w = o.workers[wi];
		weft_runtime_t *rts[BENCH_IO_MAX] = { 0 };
		long nchains = inflight * (long)w;
		long per = (ops + nchains - 1) / nchains;
		long total = per * nchains;
		for (int b = 0; b < io.n; b++)
			rts[b] = bench_io_create(w, io.io[b], 0);
		for (int kind = 0; kind < 2; kind++) {
			if (!(kinds & (1 << kind)))
				continue;
			for (int cb = 0; cb < 2; cb++) {
				double tt[BENCH_IO_MAX][BENCH_MAX_REPS];
				int ok[BENCH_IO_MAX] = { 1, 1 };
				if (!(modes & (1 << cb)))
					continue;
				for (int b = 0; b < io.n; b++)
					if (rts[b] && o.warmup)
						weft_ops(rts[b], kind, cb, nchains, per / 10 + 1, efd, zfd);
				for (int k = 0; k < o.reps; k++)
					for (int bb = 0; bb < io.n; bb++) {
						int b = (bb + k) % io.n;
						if (!rts[b])
							continue;
						tt[b][k] = weft_ops(rts[b], kind, cb, nchains, per, efd, zfd);
						if (tt[b][k] < 0)
							ok[b] = 0;
					}
				for (int b = 0; b < io.n; b++) {
					if (!rts[b])
						continue;
					double rate = (double)total / bench_median(tt[b], o.reps) / w;
					snprintf(param, sizeof param, "op=%s;inflight=%ld;ops=%ld",
					         kind_name[kind], inflight, total);
					snprintf(result, sizeof result, "ops_per_s=%.0f;vs_raw=%.3f", rate,
					         raw32 > 0 ? rate / raw32 : 0.0);
					bench_report(cb ? "op_cb" : "op_fiber", bench_io_label(io.io[b]), w,
					             param, tt[b], o.reps, result, ok[b]);
				}
			}
		}
		for (int b = 0; b < io.n; b++)
			bench_weft_destroy(rts[b]);
	}
	close(efd);
	close(zfd);
	return bench_failed() ? 1 : 0;
}
