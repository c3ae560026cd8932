/*
 * tunables.h: every scheduling constant, with the reason for its value.
 * Builds with -DWEFT_TEST_SMALL shrink capacities so that the growth and
 * overflow paths run in tests.
 */
#ifndef WEFT_TUNABLES_H
#define WEFT_TUNABLES_H

#define WEFT_CACHELINE 64

/* Initial deque capacity (log2).  1024 tasks cover the depth x breadth of
 * ordinary recursive fork-join without growing; growth doubles. */
#ifdef WEFT_TEST_SMALL
#define WEFT_DEQUE_LOG2_DEFAULT 2
#else
#define WEFT_DEQUE_LOG2_DEFAULT 10
#endif
#define WEFT_DEQUE_LOG2_MAX 24

/* Slots of each worker's typed-task array (tdq.c), mapped at create and
 * touched only as used: 262144 x 64 bytes = 16 MiB of address space, far
 * beyond the depth x breadth of any recursion.  Spawns beyond it go to
 * private chunks of WEFT_TDQ_CHUNK slots. */
#ifdef WEFT_TEST_SMALL
#define WEFT_TDQ_SLOTS 8u
#define WEFT_TDQ_CHUNK 4u
#else
#define WEFT_TDQ_SLOTS (1u << 18)
#define WEFT_TDQ_CHUNK 256u
#endif

/* Injection ring capacity (log2).  Outside submissions beyond it go to a
 * locked overflow list, so a burst never blocks or fails the submitter. */
#ifdef WEFT_TEST_SMALL
#define WEFT_INJECT_LOG2 2
#else
#define WEFT_INJECT_LOG2 12
#endif

/* A worker checks the injection queue before its own deque every this many
 * local tasks, so outside work is not starved by a deep local tree.  Prime,
 * as in Go's schedtick % 61, so it does not beat with loop periods. */
#define WEFT_INJECT_INTERVAL 61

/* Steal rounds (each a pass over all other workers, in random order of
 * start) that a searching worker makes, with exponential ck_backoff between
 * them, before it parks.  With 2 workers and the backoff ceiling below this
 * is about 30-60 us of searching: long enough to catch the next spawn of a
 * fork-join phase, short enough that idle is idle. */
#define WEFT_SEARCH_ROUNDS 64
#define WEFT_BACKOFF_CEILING (1U << 12)
/* The same for a worker with I/O or timers pending: it parks inside its
 * event state, which its own completions wake at once, so it searches only
 * briefly (a few microseconds, like a spinning M in Go) instead of burning
 * a core between the requests of a moderately loaded server; and only one
 * round, without spinning, while no other worker runs and its last park
 * slept at least WEFT_PARK_YIELD_NS and ended less than that ago
 * (scheduler.c, idle). */
#define WEFT_SEARCH_ROUNDS_IO 4

/* A search's last round yields the CPU before the worker parks only if its
 * last park slept less than this: then work comes often enough that a
 * client on the same cores, given the CPU, likely sends some before the
 * park's re-check (scheduler.c, idle). */
#define WEFT_PARK_YIELD_NS 50000

/* A waiting worker runs foreign (stolen or injected) work on top of its
 * stack only while more than this much of the stack is left: helping then
 * cannot overflow the stack, however deep waits nest, and short of that
 * limit nothing stops a waiter from running the task it waits for (oneTBB
 * bounds stealing by a stack limit the same way).  A quarter of the stack,
 * at least 64 KiB: room for the foreign task's own recursion. */
#define WEFT_STACK_RESERVE_MIN (64UL << 10)
#define WEFT_STACK_RESERVE_DIV 4

/* Default worker stack: deep recursion (fib(40) plus helping) runs on it. */
#define WEFT_STACK_DEFAULT (8UL << 20)

/* Default fiber stack: 256 KiB of address space, of which a fiber touches
 * (and so costs in memory) only what it uses; room for helping in
 * weft_wait (a quarter is kept in reserve, as on worker stacks). */
#define WEFT_FIBER_STACK_DEFAULT (256UL << 10)
#define WEFT_FIBER_STACK_MIN (16UL << 10)

/* Free fiber stacks each worker keeps for reuse: enough for a burst of
 * short-lived fibers without an mmap per fiber, bounded so that a worker
 * that finishes many migrated fibers does not hoard memory. */
#define WEFT_FIBER_STACK_CACHE 64

/* Cache lines of a fiber's saved frames prefetched before it resumes
 * (fiber.h): the switch's saved registers and the callers it returns
 * through.  A fiber suspended in weft_recv has 384 bytes of them there
 * (the switch, weft__fiber_park, weft_op_run, and weft_recv's frame with
 * the op), 7 lines at most.  Echo with 1000 connections, 1 worker: 8
 * lines took 947 -> 839 ns of user time per message against 4 (medians of
 * 8 interleaved pinned runs, 7 lower); 16 were slower than 8. */
#define WEFT_FIBER_PREFETCH_LINES 8
/* Beyond that, up to this many free stacks wait in a runtime-wide pool
 * (locked; a worker moves half a cache at a time), so that bursts of a few
 * thousand fibers, and fibers that end on another worker than the one that
 * made them, reuse stacks instead of mapping new ones.  The pool keeps the
 * pages a stack touched: at the default size, with fibers that use a few
 * pages, some tens of MB at most. */
#define WEFT_FIBER_STACK_POOL 4096

/* Submission-queue entries of each worker's io_uring: enough for a burst
 * of a few hundred operations between two polls; more just submits early. */
#define WEFT_IO_ENTRIES_DEFAULT 256

/* Longest a helping waiter (a plain task in weft_op_run) blocks in its
 * event state before looking for other work again. */
#define WEFT_IO_HELP_WAIT_NS 50000

/* How long a helping waiter whose wait another thread ends (a group, a
 * future, a stolen typed task) spins, yielding, before it blocks in its
 * event state as above: nothing wakes it there when the other thread is
 * done.  Longer than a fork-join tail: a parked thief starts 30-90 us after
 * the spawn on this machine, and the waiter then waits that long for its
 * last task. */
#define WEFT_HELP_SPIN_NS 200000

/* A busy worker with I/O at hand (submissions queued, completions ready)
 * submits and reaps between two top-level tasks at most this often while
 * another worker is idle (parked or searching): often enough that a long
 * queue of CPU-heavy fibers does not hold back their sends and hide their
 * completions from the idle one, seldom enough that many short fibers
 * still share one system call. */
#define WEFT_IO_POLL_NS 20000

/* The same while no other worker is idle: nobody could take what a reap
 * brings, so the completions queue behind the local work either way, and a
 * longer batch is cheaper in the kernel as well.  An echo server with a
 * thousand connections on one io_uring worker entered the ring once per 3
 * messages at 20 us, with 2 of 3 receives arriving before their data (a
 * poll armed, then a wake); at 200 us, once per 17, with 1 in 6, and 13%
 * less CPU per message. */
#define WEFT_IO_POLL_BUSY_NS 200000

/* A worker with pending operations in its epoll set that has not reaped it
 * for this long (its thread is off its core, or in a long task) is reaped
 * by a peer that looks (io.h, shared event state): short enough to keep a
 * descheduled worker's requests out of the millisecond tail, long enough
 * that a worker at its tasks is not raced for its own set. */
#define WEFT_IO_STALE_NS 200000

/* Two looks at a stale peer's CPU clock at most this far apart decide
 * whether it waits for a CPU (io.c, pulls). */
#define WEFT_IO_PULL_WINDOW_NS 2000000

/* An epoll worker that has not reaped its set for this long queues a RECV
 * through the set instead of trying it first (io_epoll.c, behind()); a
 * busy one looks at its set between tasks this often (epoll cannot hint
 * that something is there, as io_uring's completion ring does). */
#define WEFT_IO_FAIR_NS 200000

/* An epoll wait that relied on a persistent registration without a system
 * call is checked with one (EPOLL_CTL_MOD) if it lasts this long
 * (io_epoll.c, "Persistent registrations"): the bound on how long a number
 * closed and reused behind weft's back can keep an op waiting, and the
 * wait length above which a system call per wait costs nothing that
 * matters. */
#define WEFT_EPOLL_CHECK_NS 20000000

/* How many of the next workers (by index) a parking worker looks at for
 * one to watch that way: each running worker is watched by this many
 * others, without a parking worker reading every worker's state. */
#define WEFT_IO_WATCH_PEERS 4

#endif /* WEFT_TUNABLES_H */
