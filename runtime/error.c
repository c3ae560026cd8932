/*
 * error.c: error strings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "worker.h"

const char *weft_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument";
	case -ENOMEM:
		return "out of memory";
	case -EPERM:
		return "must be called on a weft worker (inside a task)";
	case -EDEADLK:
		return "would wait for itself (called on the runtime's own worker)";
	case -ESHUTDOWN:
		return "runtime is shutting down";
	case -EAGAIN:
		return "could not start a worker thread";
	default:
		if (err < 0 && err != INT_MIN && strerrordesc_np(-err))
			return strerrordesc_np(-err);
		return "unknown error";
	}
}
