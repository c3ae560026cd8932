/*
 * test_deque.c: the Chase-Lev deque (runtime/deque.h) on its own, without
 * the scheduler: sequential semantics (LIFO take, FIFO steal, empty, growth,
 * wrap-around), argument checking of weft__deque_init, and an owner/thieves
 * stress test where every item must come out exactly once.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include "deque.h"

/* Items are task records whose three words all encode the item's id, so a
 * torn or stale read of a slot shows up as an inconsistent record. */
static void item_fn(void *arg) { (void)arg; }

static struct weft__task item(uint64_t id)
{
	struct weft__task t;
	t.fn = item_fn;
	t.arg = (void *)(uintptr_t)(id + 1);
	t.group = (struct weft_group *)(uintptr_t)(~id << 3);
	return t;
}

/* The id of a record, or UINT64_MAX when the record is inconsistent. */
static uint64_t item_id(const struct weft__task *t)
{
	uint64_t id = (uint64_t)(uintptr_t)t->arg - 1;
	if (t->fn != item_fn || t->arg == NULL || t->group != (struct weft_group *)(uintptr_t)(~id << 3))
		return UINT64_MAX;
	return id;
}

static void push_ok(struct weft__deque *dq, uint64_t id)
{
	struct weft__task t = item(id);
	int rc = weft__deque_push(dq, &t);
	cr_assert_eq(rc, 0, "push(%llu) = %d", (unsigned long long)id, rc);
}

/* ------------------------------------------------------------------ */
/* Sequential behaviour                                                 */

Test(deque, init_rejects_bad_log2cap, .timeout = 10)
{
	struct weft__deque dq;
	cr_assert_eq(weft__deque_init(&dq, 0), -EINVAL);
	cr_assert_eq(weft__deque_init(&dq, WEFT_DEQUE_LOG2_MAX + 1), -EINVAL);
	cr_assert_eq(weft__deque_init(&dq, 63), -EINVAL);
	cr_assert_eq(weft__deque_init(&dq, 64), -EINVAL);
	cr_assert_eq(weft__deque_init(&dq, 1000), -EINVAL);
	cr_assert_eq(weft__deque_init(&dq, ~0u), -EINVAL);

	/* The extremes of the valid range work. */
	cr_assert_eq(weft__deque_init(&dq, 1), 0);
	push_ok(&dq, 7);
	struct weft__task t;
	cr_assert(weft__deque_take(&dq, &t));
	cr_assert_eq(item_id(&t), 7);
	weft__deque_fini(&dq);
}

Test(deque, empty_take_and_steal, .timeout = 10)
{
	struct weft__deque dq;
	struct weft__task t;
	cr_assert_eq(weft__deque_init(&dq, 2), 0);

	cr_assert_not(weft__deque_take(&dq, &t), "take on a fresh deque");
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_EMPTY, "steal on a fresh deque");
	/* Repeated empty takes must not corrupt bottom. */
	for (int i = 0; i < 10; i++)
		cr_assert_not(weft__deque_take(&dq, &t));
	cr_assert_eq(weft__deque_size_hint(&dq), 0);

	push_ok(&dq, 1);
	cr_assert_eq(weft__deque_size_hint(&dq), 1);
	cr_assert(weft__deque_take(&dq, &t));
	cr_assert_eq(item_id(&t), 1);
	cr_assert_not(weft__deque_take(&dq, &t), "take after the last item was taken");
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_EMPTY);

	push_ok(&dq, 2);
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_OK);
	cr_assert_eq(item_id(&t), 2);
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_EMPTY, "steal after the last item was stolen");
	cr_assert_not(weft__deque_take(&dq, &t));
	cr_assert_eq(weft__deque_size_hint(&dq), 0);
	weft__deque_fini(&dq);
}

#define GROW_N 100000

Test(deque, growth_keeps_items_lifo_take, .timeout = 30)
{
	struct weft__deque dq;
	struct weft__task t;
	cr_assert_eq(weft__deque_init(&dq, 1), 0);
	for (uint64_t i = 0; i < GROW_N; i++)
		push_ok(&dq, i);
	cr_assert_eq(weft__deque_size_hint(&dq), GROW_N);
	for (uint64_t i = GROW_N; i-- > 0;) {
		cr_assert(weft__deque_take(&dq, &t), "take #%llu failed", (unsigned long long)(GROW_N - i));
		cr_assert_eq(item_id(&t), i, "LIFO order: got %llu, want %llu",
		             (unsigned long long)item_id(&t), (unsigned long long)i);
	}
	cr_assert_not(weft__deque_take(&dq, &t));
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_EMPTY);
	weft__deque_fini(&dq);
}

Test(deque, growth_keeps_items_fifo_steal, .timeout = 30)
{
	struct weft__deque dq;
	struct weft__task t;
	cr_assert_eq(weft__deque_init(&dq, 2), 0);
	for (uint64_t i = 0; i < GROW_N; i++)
		push_ok(&dq, i);
	for (uint64_t i = 0; i < GROW_N; i++) {
		cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_OK, "steal #%llu", (unsigned long long)i);
		cr_assert_eq(item_id(&t), i, "FIFO order: got %llu, want %llu",
		             (unsigned long long)item_id(&t), (unsigned long long)i);
	}
	cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_EMPTY);
	cr_assert_not(weft__deque_take(&dq, &t));
	weft__deque_fini(&dq);
}

/* Growth with a non-zero top: steal some first, so the live window
 * [top, bottom) does not start at a multiple of the capacity. */
Test(deque, growth_with_moved_top, .timeout = 30)
{
	struct weft__deque dq;
	struct weft__task t;
	cr_assert_eq(weft__deque_init(&dq, 1), 0);
	uint64_t next = 0, lo = 0;
	for (int round = 0; round < 200; round++) {
		/* Push a growing burst, steal a third of what is there. */
		for (int k = 0; k < round + 3; k++)
			push_ok(&dq, next++);
		uint64_t n = (next - lo) / 3;
		for (uint64_t k = 0; k < n; k++) {
			cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_OK);
			cr_assert_eq(item_id(&t), lo, "round %d: stole %llu, want %llu", round,
			             (unsigned long long)item_id(&t), (unsigned long long)lo);
			lo++;
		}
	}
	/* Take the rest from the bottom: newest first, down to lo. */
	for (uint64_t i = next; i-- > lo;) {
		cr_assert(weft__deque_take(&dq, &t));
		cr_assert_eq(item_id(&t), i);
	}
	cr_assert_not(weft__deque_take(&dq, &t));
	weft__deque_fini(&dq);
}

/* Indices far beyond the capacity: the buffer is used circularly. */
Test(deque, wraparound_small_capacity, .timeout = 30)
{
	struct weft__deque dq;
	struct weft__task t;
	cr_assert_eq(weft__deque_init(&dq, 2), 0);
	uint64_t next = 0, lo = 0;
	for (int round = 0; round < 100000; round++) {
		/* 3 in, 1 stolen from the top, 2 taken from the bottom: the
		 * deque never holds more than 3 items, capacity stays 4. */
		for (int k = 0; k < 3; k++)
			push_ok(&dq, next++);
		cr_assert_eq(weft__deque_steal(&dq, &t), WEFT_STEAL_OK);
		cr_assert_eq(item_id(&t), lo, "round %d", round);
		cr_assert(weft__deque_take(&dq, &t));
		cr_assert_eq(item_id(&t), next - 1, "round %d", round);
		cr_assert(weft__deque_take(&dq, &t));
		cr_assert_eq(item_id(&t), next - 2, "round %d", round);
		lo = next;
		cr_assert_not(weft__deque_take(&dq, &t));
	}
	weft__deque_fini(&dq);
}

/* ------------------------------------------------------------------ */
/* Owner against thieves                                                */

#define THIEVES 3

struct stress {
	struct weft__deque dq;
	uint64_t n;                 /* items in this run */
	_Atomic uint8_t *seen;      /* per item: how many times it came out */
	atomic_int owner_done;
	atomic_int go;
	uint64_t taken;             /* by the owner */
	uint64_t stolen[THIEVES];   /* by each thief */
	uint64_t aborts[THIEVES];
	uint64_t seed;
	int burst_max;
};

static void record(struct stress *s, const struct weft__task *t)
{
	uint64_t id = item_id(t);
	if (id == UINT64_MAX || id >= s->n) {
		t_fail_at(__FILE__, __LINE__, "inconsistent record fn=%p arg=%p group=%p", (void *)(uintptr_t)t->fn,
		          t->arg, (void *)t->group);
		return;
	}
	atomic_fetch_add_explicit(&s->seen[id], 1, memory_order_relaxed);
}

struct thief_arg {
	struct stress *s;
	int idx;
};

static void *thief_main(void *p)
{
	struct thief_arg *ta = p;
	struct stress *s = ta->s;
	struct weft__task t;
	while (!atomic_load(&s->go))
		;
	for (;;) {
		enum weft__steal r = weft__deque_steal(&s->dq, &t);
		if (r == WEFT_STEAL_OK) {
			record(s, &t);
			s->stolen[ta->idx]++;
		} else if (r == WEFT_STEAL_ABORT) {
			s->aborts[ta->idx]++;
		} else if (r == WEFT_STEAL_EMPTY) {
			/* The owner drains its deque before it sets owner_done,
			 * so empty after owner_done means empty forever. */
			if (atomic_load(&s->owner_done)) {
				r = weft__deque_steal(&s->dq, &t);
				if (r == WEFT_STEAL_OK) {
					t_fail_at(__FILE__, __LINE__, "steal succeeded after the owner drained the deque");
					record(s, &t);
				}
				break;
			}
		} else {
			t_fail_at(__FILE__, __LINE__, "steal returned %d", (int)r);
			break;
		}
	}
	return NULL;
}

/* Owner: random bursts of pushes, each followed by a random number of
 * takes; now and then a large burst so that the deque grows while the
 * thieves are stealing from it. */
static void owner_run(struct stress *s)
{
	struct weft__task t;
	uint64_t next = 0;
	while (next < s->n) {
		uint64_t r = t_rand(&s->seed);
		uint64_t burst = 1 + r % (uint64_t)s->burst_max;
		if ((r >> 32) % 4096 == 0)
			burst = 4096 + (r >> 20) % 8192;
		if (burst > s->n - next)
			burst = s->n - next;
		for (uint64_t k = 0; k < burst; k++) {
			struct weft__task it = item(next++);
			if (weft__deque_push(&s->dq, &it) != 0) {
				t_fail_at(__FILE__, __LINE__, "push failed");
				return;
			}
		}
		uint64_t ntake = (r >> 40) % (burst + 2);
		for (uint64_t k = 0; k < ntake; k++) {
			if (!weft__deque_take(&s->dq, &t))
				break;
			record(s, &t);
			s->taken++;
		}
	}
	while (weft__deque_take(&s->dq, &t)) {
		record(s, &t);
		s->taken++;
	}
}

/* One run: returns the number of items the thieves stole. */
static uint64_t stress_run(uint64_t n, unsigned log2cap, int burst_max, uint64_t seed)
{
	struct stress *s = calloc(1, sizeof *s);
	cr_assert_not_null(s);
	s->n = n;
	s->seed = seed | 1;
	s->burst_max = burst_max;
	s->seen = calloc(n, sizeof *s->seen);
	cr_assert_not_null(s->seen, "calloc(%llu)", (unsigned long long)n);
	cr_assert_eq(weft__deque_init(&s->dq, log2cap), 0);

	pthread_t th[THIEVES];
	struct thief_arg ta[THIEVES];
	for (int i = 0; i < THIEVES; i++) {
		ta[i].s = s;
		ta[i].idx = i;
		cr_assert_eq(pthread_create(&th[i], NULL, thief_main, &ta[i]), 0);
	}
	atomic_store(&s->go, 1);
	owner_run(s);
	atomic_store(&s->owner_done, 1);
	for (int i = 0; i < THIEVES; i++)
		pthread_join(th[i], NULL);
	T_ASSERT_CLEAN();

	uint64_t stolen = 0;
	for (int i = 0; i < THIEVES; i++)
		stolen += s->stolen[i];
	cr_assert_eq(s->taken + stolen, n, "taken %llu + stolen %llu != %llu items",
	             (unsigned long long)s->taken, (unsigned long long)stolen, (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		unsigned c = atomic_load_explicit(&s->seen[i], memory_order_relaxed);
		cr_assert_eq(c, 1, "item %llu came out %u times (run of %llu, taken %llu, stolen %llu)",
		             (unsigned long long)i, c, (unsigned long long)n, (unsigned long long)s->taken,
		             (unsigned long long)stolen);
	}
	weft__deque_fini(&s->dq);
	free(s->seen);
	free(s);
	return stolen;
}

/* >= 10 million items in total (4 runs of 2.5M), 1 million in quick mode. */
Test(deque, stress_owner_vs_thieves_exactly_once, .timeout = 600)
{
	const int runs = 4;
	uint64_t per_run = t_size(2500000, 250000);
	uint64_t total = 0, stolen = 0;
	for (int r = 0; r < runs; r++) {
		/* Alternate tiny and default initial capacities, and burst
		 * lengths around the capacity. */
		unsigned log2cap = (r % 2 == 0) ? 1 : 2;
		int burst_max = (r % 2 == 0) ? 8 : 64;
		stolen += stress_run(per_run, log2cap, burst_max, 0x9e3779b97f4a7c15ULL * (uint64_t)(r + 1));
		total += per_run;
	}
	cr_log_info("deque stress: %llu items, %llu stolen", (unsigned long long)total, (unsigned long long)stolen);
	cr_assert_geq(total, t_size(10000000, 1000000));
	/* Otherwise the test did not test stealing at all. */
	cr_assert_gt(stolen, 0, "the thieves never stole anything in %llu items", (unsigned long long)total);
}

/* The last-item race (I3): the owner pushes one item and immediately takes
 * it back while three thieves hammer the top. */
struct last_item {
	struct weft__deque dq;
	uint64_t n;
	_Atomic uint8_t *seen;
	atomic_int done;
	atomic_uint_fast64_t stolen;
};

static void *last_item_thief(void *p)
{
	struct last_item *s = p;
	struct weft__task t;
	for (;;) {
		enum weft__steal r = weft__deque_steal(&s->dq, &t);
		if (r == WEFT_STEAL_OK) {
			uint64_t id = item_id(&t);
			if (id >= s->n) {
				t_fail_at(__FILE__, __LINE__, "inconsistent record");
				continue;
			}
			atomic_fetch_add_explicit(&s->seen[id], 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&s->stolen, 1, memory_order_relaxed);
		} else if (r == WEFT_STEAL_EMPTY && atomic_load(&s->done)) {
			break;
		}
	}
	return NULL;
}

Test(deque, stress_last_item_race, .timeout = 300)
{
	struct last_item *s = calloc(1, sizeof *s);
	cr_assert_not_null(s);
	s->n = t_size(2000000, 200000);
	s->seen = calloc(s->n, 1);
	cr_assert_not_null(s->seen);
	cr_assert_eq(weft__deque_init(&s->dq, 1), 0);

	pthread_t th[THIEVES];
	for (int i = 0; i < THIEVES; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, last_item_thief, s), 0);
	uint64_t taken = 0, seed = 0x1234567;
	struct weft__task t;
	for (uint64_t i = 0; i < s->n; i++) {
		struct weft__task it = item(i);
		if (weft__deque_push(&s->dq, &it) != 0) {
			t_fail_at(__FILE__, __LINE__, "push failed");
			break;
		}
		/* A short random pause so that thieves reach the item about
		 * as often as the owner does. */
		for (volatile unsigned k = (unsigned)(t_rand(&seed) % 128); k > 0; k--)
			;
		if (weft__deque_take(&s->dq, &t)) {
			uint64_t id = item_id(&t);
			if (id != i)
				t_fail_at(__FILE__, __LINE__, "took %llu, want %llu", (unsigned long long)id,
				          (unsigned long long)i);
			else
				atomic_fetch_add_explicit(&s->seen[id], 1, memory_order_relaxed);
			taken++;
		}
	}
	atomic_store(&s->done, 1);
	for (int i = 0; i < THIEVES; i++)
		pthread_join(th[i], NULL);
	T_ASSERT_CLEAN();

	uint64_t stolen = atomic_load(&s->stolen);
	cr_log_info("last-item race: %llu items, %llu stolen", (unsigned long long)s->n, (unsigned long long)stolen);
	cr_assert_eq(taken + stolen, s->n, "taken %llu + stolen %llu != %llu", (unsigned long long)taken,
	             (unsigned long long)stolen, (unsigned long long)s->n);
	for (uint64_t i = 0; i < s->n; i++)
		cr_assert_eq(atomic_load_explicit(&s->seen[i], memory_order_relaxed), 1,
		             "item %llu came out %u times", (unsigned long long)i,
		             (unsigned)atomic_load_explicit(&s->seen[i], memory_order_relaxed));
	weft__deque_fini(&s->dq);
	free(s->seen);
	free(s);
}
