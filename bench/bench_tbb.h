/*
 * bench_tbb.h: shared by the oneTBB peers.  Each measurement runs inside a
 * task_arena of exactly `workers` slots (the calling thread plus
 * workers - 1 TBB threads), under a global_control that caps the pool.
 */
#ifndef BENCH_TBB_H
#define BENCH_TBB_H

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "bench_util.h"

/* Seconds taken by f() run inside `arena`. */
template <typename F>
static double bench_tbb_time(tbb::task_arena &arena, F f)
{
	double t0 = bench_now();
	arena.execute(f);
	return bench_now() - t0;
}

#endif /* BENCH_TBB_H */
