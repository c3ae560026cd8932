/*
 * bench_omp.h: shared by the OpenMP peers.  The runtime column names the
 * OpenMP implementation: omp-gcc (gcc + libgomp, built by automake) or
 * omp-llvm (clang -fopenmp=libomp, built by bench/run); override with
 * -DBENCH_OMP_NAME='"..."'.
 */
#ifndef BENCH_OMP_H
#define BENCH_OMP_H

#include <omp.h>

#include "bench_util.h"

#ifndef BENCH_OMP_NAME
#ifdef __clang__
#define BENCH_OMP_NAME "omp-llvm"
#else
#define BENCH_OMP_NAME "omp-gcc"
#endif
#endif

/* Fixed team sizes: no dynamic adjustment behind our back. */
static inline void bench_omp_init(void)
{
	omp_set_dynamic(0);
}

#endif /* BENCH_OMP_H */
