/*
 * weft/task.h: typed fork-join tasks, the fast path of fork-join.
 * Included by weft.h; do not include it alone.
 *
 * weft_spawn costs a call, a three-word record, a group count and an
 * indirect call per task.  For fine-grained recursion (fib, tree searches,
 * divide and conquer over small leaves) that is several times the work.
 * A typed task, declared with WEFT_TASK_n, is spawned into a per-worker
 * array of fixed-size slots by code inlined at the call site; its sync, when
 * no thief took the task, is a direct call of the task's body with the
 * arguments read back from the slot.  No allocation, no atomic instruction
 * and no fence on that path: the slots a worker has spawned stay private to
 * it until an idle worker asks for work, and then the worker publishes half
 * of them (a split deque, as in Lace; runtime/tdq.c has the protocol).
 *
 *     WEFT_TASK_1(long, fib, int, n)
 *     {
 *             if (n < 2)
 *                     return n;
 *             WEFT_SPAWN(fib, n - 1);
 *             long b = WEFT_CALL(fib, n - 2);
 *             return WEFT_SYNC(fib) + b;
 *     }
 *     ...  long r = WEFT_RUN(fib, 40);   (from any code, any thread)
 *
 * Rules.
 *   - WEFT_TASK_n(RET, NAME, T1, A1, ...) defines static functions named
 *     NAME_weft_*, for n = 1..4 arguments; WEFT_VOID_TASK_n the same for a
 *     task that returns nothing.  The function body follows the macro.  The
 *     arguments and the result together must fit in 48 bytes.
 *   - Inside a task body: WEFT_SPAWN(NAME, args...) starts a task,
 *     WEFT_SYNC(NAME) waits for the most recent one not yet synced and
 *     returns its result, WEFT_CALL(NAME, args...) calls a task directly.
 *     Syncs pair with spawns last-in first-out, and every spawn must be
 *     synced before the body that made it returns (as in Cilk and Lace).
 *   - Anywhere else: WEFT_RUN(NAME, args...) runs a task body and returns
 *     its result.  On a worker its spawns run in parallel; on any other
 *     thread they run one after the other on that thread.  Spawns that the
 *     bodies under it left unsynced are synced (run, or waited for) before
 *     WEFT_RUN returns, their results dropped: such a mistake loses no
 *     task, as long as their arguments do not point into a frame that
 *     has returned.
 *   - Each worker has 262144 slots (16 MiB of address space, touched only
 *     as used); spawns beyond them in one worker's stack of unsynced tasks
 *     still work but are not stealable.  Only running out of memory there aborts, as a
 *     too deep recursion would.  A WEFT_SYNC with no WEFT_SPAWN to pair
 *     with aborts with a message: there is no result it could return.
 *   - While a task body is on a fiber's stack, that fiber does not
 *     suspend: weft I/O, weft_sleep, weft_future_wait and weft_close made
 *     there wait the way they do in a plain task (the worker runs other
 *     tasks meanwhile), and weft_yield runs one other task in place.  The
 *     stack of unsynced spawns belongs to the worker, so the fiber must
 *     not move.  A body that waits before it syncs makes its unsynced
 *     spawns stealable first, and runs them itself if nobody else does.
 *   - Names ending in _weft_*_ and weft_*_ are the macros' own; task
 *     parameters must not use them.
 *
 * The types below are public only so that the inline code can use them:
 * their fields are not API and change with the library's soname.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/task.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_tdq weft_tdq_t;
typedef struct weft_tslot weft_tslot_t;
typedef void (*weft_tslot_fn)(weft_tdq_t *q, weft_tslot_t *s);

#define WEFT_TSLOT_PAYLOAD 48

/* One spawned task: what a thief runs, its completion flag, and the
 * arguments, overwritten by the result once it ran. */
struct weft_tslot {
	weft_tslot_fn run_;
	uint32_t done_;
	uint32_t pad_;
	union {
		long double align_;
		unsigned char bytes_[WEFT_TSLOT_PAYLOAD];
	} u_;
};

/* A worker's typed-task deque.  Owner-private fields first; the word that
 * thieves change and the flag they raise on lines of their own. */
struct weft_tdq {
	weft_tslot_t *head_;   /* next free slot */
	weft_tslot_t *split_;  /* first private slot; below it public ones */
	weft_tslot_t *end_;    /* one past the last slot of the current array */
	weft_tslot_t *base_;   /* the worker's slot array */
	uint32_t publish_;     /* the public part is empty: publish the next spawn */
	uint32_t depth_;       /* task bodies running on the current stack */
	void *chunk_;          /* overflow chunks (private slots), or NULL */
	void *owner_;          /* the worker, NULL off the workers */
	uint64_t ts_ __attribute__((aligned(64)));        /* top | split << 32 */
	uint32_t movesplit_ __attribute__((aligned(64))); /* a thief wants work */
} __attribute__((aligned(64)));

WEFT_EXTERN weft_tslot_t *weft_tdq_overflow_(weft_tdq_t *q);
WEFT_EXTERN void weft_tdq_publish_(weft_tdq_t *q);
WEFT_EXTERN weft_tslot_t *weft_tdq_sync_(weft_tdq_t *q);
WEFT_EXTERN weft_tdq_t *weft_tdq_enter_(void);
WEFT_EXTERN void weft_tdq_leave_(weft_tdq_t *q, weft_tslot_t *head);

static inline weft_tslot_t *weft_tdq_slot_(weft_tdq_t *q)
{
	weft_tslot_t *s = q->head_;
	if (__builtin_expect(s == q->end_, 0))
		s = weft_tdq_overflow_(q);
	return s;
}

static inline void weft_tdq_push_(weft_tdq_t *q, weft_tslot_t *s, weft_tslot_fn run)
{
	s->run_ = run; /* done_ is 0: tdq.c, T6 */
	q->head_ = s + 1;
	if (__builtin_expect(q->publish_ | __atomic_load_n(&q->movesplit_, __ATOMIC_RELAXED), 0))
		weft_tdq_publish_(q);
}

/* The slot of the newest unsynced spawn: untagged when nobody ran it (the
 * arguments are in the slot), tagged with WEFT_TSLOT_STOLEN when a thief
 * ran it (the result is). */
#define WEFT_TSLOT_STOLEN ((uintptr_t)1)
static inline weft_tslot_t *weft_tdq_pop_(weft_tdq_t *q)
{
	weft_tslot_t *s = q->head_;
	if (__builtin_expect(s > q->split_, 1)) {
		q->head_ = --s;
		if (__builtin_expect(__atomic_load_n(&q->movesplit_, __ATOMIC_RELAXED) != 0, 0))
			weft_tdq_publish_(q);
		return s;
	}
	return weft_tdq_sync_(q);
}

static inline int weft_tslot_stolen_(const weft_tslot_t *s)
{
	return ((uintptr_t)s & WEFT_TSLOT_STOLEN) != 0;
}

static inline weft_tslot_t *weft_tslot_untag_(weft_tslot_t *s)
{
	return (weft_tslot_t *)((uintptr_t)s & ~WEFT_TSLOT_STOLEN);
}

#ifdef __cplusplus
#define WEFT_STATIC_ASSERT_ static_assert
#else
#define WEFT_STATIC_ASSERT_ _Static_assert
#endif

#define WEFT_TASK_PAYLOAD_(NAME, s) ((union NAME##_weft_pl_ *)(void *)(s)->u_.bytes_)

/* The parts common to WEFT_TASK_n and WEFT_VOID_TASK_n.  PARAMS: the
 * parameter list with the hidden deque first; FIELDS: the argument fields;
 * STORE: statements storing the arguments into weft_p_; ARGS: the body's
 * arguments read from weft_p_; ROOTPARAMS and ROOTARGS: the same for
 * WEFT_RUN, without the hidden deque. */
#define WEFT_TASK_COMMON_(NAME, PARAMS, STORE)                                                  \
	WEFT_STATIC_ASSERT_(sizeof(union NAME##_weft_pl_) <= WEFT_TSLOT_PAYLOAD,                \
	               #NAME ": task arguments and result exceed 48 bytes");                    \
	static void NAME##_weft_run_(weft_tdq_t *weft_tdq_, weft_tslot_t *weft_s_)              \
		__attribute__((unused));                                                        \
	static inline __attribute__((unused)) void NAME##_weft_spawn_ PARAMS                    \
	{                                                                                       \
		weft_tslot_t *weft_s_ = weft_tdq_slot_(weft_tdq_);                              \
		union NAME##_weft_pl_ *weft_p_ = WEFT_TASK_PAYLOAD_(NAME, weft_s_);             \
		STORE                                                                           \
		weft_tdq_push_(weft_tdq_, weft_s_, NAME##_weft_run_);                           \
	}

#define WEFT_TASK_(RT, NAME, PARAMS, FIELDS, STORE, ARGS, ROOTPARAMS, ROOTARGS)                 \
	static RT NAME##_weft_body_ PARAMS;                                                     \
	union NAME##_weft_pl_ {                                                                 \
		struct { FIELDS } a;                                                            \
		RT r;                                                                           \
	};                                                                                      \
	WEFT_TASK_COMMON_(NAME, PARAMS, STORE)                                                  \
	static void NAME##_weft_run_(weft_tdq_t *weft_tdq_, weft_tslot_t *weft_s_)              \
	{                                                                                       \
		union NAME##_weft_pl_ *weft_p_ = WEFT_TASK_PAYLOAD_(NAME, weft_s_);             \
		weft_p_->r = NAME##_weft_body_ ARGS;                                            \
	}                                                                                       \
	static inline __attribute__((unused)) RT NAME##_weft_sync_(weft_tdq_t *weft_tdq_)       \
	{                                                                                       \
		weft_tslot_t *weft_s_ = weft_tdq_pop_(weft_tdq_);                               \
		if (__builtin_expect(!weft_tslot_stolen_(weft_s_), 1)) {                        \
			union NAME##_weft_pl_ *weft_p_ = WEFT_TASK_PAYLOAD_(NAME, weft_s_);     \
			return NAME##_weft_body_ ARGS;                                          \
		}                                                                               \
		return WEFT_TASK_PAYLOAD_(NAME, weft_tslot_untag_(weft_s_))->r;                 \
	}                                                                                       \
	static inline __attribute__((unused)) RT NAME##_weft_root_ ROOTPARAMS                   \
	{                                                                                       \
		weft_tdq_t *weft_tdq_ = weft_tdq_enter_();                                      \
		weft_tslot_t *weft_h0_ = weft_tdq_->head_;                                      \
		RT weft_r_ = NAME##_weft_body_ ROOTARGS;                                        \
		weft_tdq_leave_(weft_tdq_, weft_h0_);                                           \
		return weft_r_;                                                                 \
	}                                                                                       \
	static RT NAME##_weft_body_ PARAMS

#define WEFT_VOID_TASK_(NAME, PARAMS, FIELDS, STORE, ARGS, ROOTPARAMS, ROOTARGS)                \
	static void NAME##_weft_body_ PARAMS;                                                   \
	union NAME##_weft_pl_ {                                                                 \
		struct { FIELDS } a;                                                            \
	};                                                                                      \
	WEFT_TASK_COMMON_(NAME, PARAMS, STORE)                                                  \
	static void NAME##_weft_run_(weft_tdq_t *weft_tdq_, weft_tslot_t *weft_s_)              \
	{                                                                                       \
		union NAME##_weft_pl_ *weft_p_ = WEFT_TASK_PAYLOAD_(NAME, weft_s_);             \
		NAME##_weft_body_ ARGS;                                                         \
	}                                                                                       \
	static inline __attribute__((unused)) void NAME##_weft_sync_(weft_tdq_t *weft_tdq_)     \
	{                                                                                       \
		weft_tslot_t *weft_s_ = weft_tdq_pop_(weft_tdq_);                               \
		if (__builtin_expect(!weft_tslot_stolen_(weft_s_), 1)) {                        \
			union NAME##_weft_pl_ *weft_p_ = WEFT_TASK_PAYLOAD_(NAME, weft_s_);     \
			NAME##_weft_body_ ARGS;                                                 \
		}                                                                               \
	}                                                                                       \
	static inline __attribute__((unused)) void NAME##_weft_root_ ROOTPARAMS                 \
	{                                                                                       \
		weft_tdq_t *weft_tdq_ = weft_tdq_enter_();                                      \
		weft_tslot_t *weft_h0_ = weft_tdq_->head_;                                      \
		NAME##_weft_body_ ROOTARGS;                                                     \
		weft_tdq_leave_(weft_tdq_, weft_h0_);                                           \
	}                                                                                       \
	static void NAME##_weft_body_ PARAMS

/* The argument plumbing of each arity.  A body need not spawn, so the
 * hidden deque may go unused. */
#define WEFT_TDQ_PARAM_ weft_tdq_t *weft_tdq_ __attribute__((unused))
#define WEFT_TA1_(T1, A1)                                                                       \
	(WEFT_TDQ_PARAM_, T1 A1), T1 a1;, weft_p_->a.a1 = A1;, (weft_tdq_, weft_p_->a.a1), (T1 A1), \
	(weft_tdq_, A1)
#define WEFT_TA2_(T1, A1, T2, A2)                                                               \
	(WEFT_TDQ_PARAM_, T1 A1, T2 A2), T1 a1; T2 a2;, weft_p_->a.a1 = A1; weft_p_->a.a2 = A2;, \
	(weft_tdq_, weft_p_->a.a1, weft_p_->a.a2), (T1 A1, T2 A2), (weft_tdq_, A1, A2)
#define WEFT_TA3_(T1, A1, T2, A2, T3, A3)                                                       \
	(WEFT_TDQ_PARAM_, T1 A1, T2 A2, T3 A3), T1 a1; T2 a2; T3 a3;,                           \
	weft_p_->a.a1 = A1; weft_p_->a.a2 = A2; weft_p_->a.a3 = A3;,                            \
	(weft_tdq_, weft_p_->a.a1, weft_p_->a.a2, weft_p_->a.a3),                               \
	(T1 A1, T2 A2, T3 A3), (weft_tdq_, A1, A2, A3)
#define WEFT_TA4_(T1, A1, T2, A2, T3, A3, T4, A4)                                               \
	(WEFT_TDQ_PARAM_, T1 A1, T2 A2, T3 A3, T4 A4), T1 a1; T2 a2; T3 a3; T4 a4;,             \
	weft_p_->a.a1 = A1; weft_p_->a.a2 = A2; weft_p_->a.a3 = A3; weft_p_->a.a4 = A4;,        \
	(weft_tdq_, weft_p_->a.a1, weft_p_->a.a2, weft_p_->a.a3, weft_p_->a.a4),                \
	(T1 A1, T2 A2, T3 A3, T4 A4), (weft_tdq_, A1, A2, A3, A4)

/* Expand the plumbing before the implementation macro splits it. */
#define WEFT_TASK_X_(M, ...) M(__VA_ARGS__)

#define WEFT_TASK_1(RT, NAME, ...) WEFT_TASK_X_(WEFT_TASK_, RT, NAME, WEFT_TA1_(__VA_ARGS__))
#define WEFT_TASK_2(RT, NAME, ...) WEFT_TASK_X_(WEFT_TASK_, RT, NAME, WEFT_TA2_(__VA_ARGS__))
#define WEFT_TASK_3(RT, NAME, ...) WEFT_TASK_X_(WEFT_TASK_, RT, NAME, WEFT_TA3_(__VA_ARGS__))
#define WEFT_TASK_4(RT, NAME, ...) WEFT_TASK_X_(WEFT_TASK_, RT, NAME, WEFT_TA4_(__VA_ARGS__))
#define WEFT_VOID_TASK_1(NAME, ...) WEFT_TASK_X_(WEFT_VOID_TASK_, NAME, WEFT_TA1_(__VA_ARGS__))
#define WEFT_VOID_TASK_2(NAME, ...) WEFT_TASK_X_(WEFT_VOID_TASK_, NAME, WEFT_TA2_(__VA_ARGS__))
#define WEFT_VOID_TASK_3(NAME, ...) WEFT_TASK_X_(WEFT_VOID_TASK_, NAME, WEFT_TA3_(__VA_ARGS__))
#define WEFT_VOID_TASK_4(NAME, ...) WEFT_TASK_X_(WEFT_VOID_TASK_, NAME, WEFT_TA4_(__VA_ARGS__))

#define WEFT_SPAWN(NAME, ...) NAME##_weft_spawn_(weft_tdq_, __VA_ARGS__)
#define WEFT_SYNC(NAME) NAME##_weft_sync_(weft_tdq_)
#define WEFT_CALL(NAME, ...) NAME##_weft_body_(weft_tdq_, __VA_ARGS__)
#define WEFT_RUN(NAME, ...) NAME##_weft_root_(__VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TASK_H */
