/*
 * trace_sym.h: naming task functions that the trace's symbol table could
 * not name.
 *
 * The writer names an address through dladdr: an exported symbol's name,
 * or "OBJECT+0xOFFSET" (OBJECT the path of the executable or shared object,
 * OFFSET from its load base) when dladdr finds no symbol, e.g. for a static
 * function.  wt_sym_resolve runs `addr2line -f -C -e OBJECT 0xOFFSET...`
 * once per object, for all of that object's addresses at a time, and
 * replaces each name it resolves; the result lives in the symbol table, so
 * every later lookup of the address is served from there (the cache).
 */
#ifndef WEFT_TRACE_SYM_H
#define WEFT_TRACE_SYM_H

#include <stddef.h>
#include <stdint.h>

#include "trace_read.h"

/* Split "PATH+0xOFFSET" (PATH non-empty, 1 to 16 hex digits) into a
 * malloc'd *path and *offset.  Returns 1 if name has that form, 0 if not,
 * -1 out of memory. */
int wt_sym_split(const char *name, char **path, uint64_t *offset);

/* Full path of program (found through $PATH unless it contains a '/') if
 * it is executable, malloc'd; NULL otherwise. */
char *wt_find_program(const char *program);

/* Resolve every "PATH+0xOFFSET" name of t with the addr2line program (NULL:
 * "addr2line" from $PATH).  Names addr2line cannot resolve stay as they
 * are; a missing addr2line or object resolves nothing.  Returns the number
 * of names replaced. */
size_t wt_sym_resolve(struct wt_trace *t, const char *addr2line);

#endif /* WEFT_TRACE_SYM_H */
