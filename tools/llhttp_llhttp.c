/*
 * tools/llhttp_llhttp.c: compiles llhttp.c of llhttp's C sources (Debian's
 * node-llhttp, found by configure: LLHTTP_SRCDIR) into weft-httpd.
 * Generated third-party code: built without our warning flags
 * (tools/http.mk).  See tools/httpd.c for why llhttp.
 */
#include <llhttp.c>
