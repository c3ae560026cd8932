#!/bin/sh
# Compile and run the example program in README.md against this build, so
# the README's "Using weft in a program" stays true.  Skipped (exit 77) in
# sanitizer builds, where fib(40) would take minutes.
set -eu
: "${CC:=cc}" "${top_srcdir:?}" "${top_builddir:?}"
[ -z "${SAN_CFLAGS:-}" ] || { echo "sanitizer build: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
awk '/^```c$/ { on = 1; next } /^```$/ { if (on) exit } on' "$top_srcdir/README.md" > "$dir/example.c"
[ -s "$dir/example.c" ] || { echo "no C example found in README.md"; exit 1; }
$CC -std=c11 -Wall -Wextra -Werror -O2 -I"$top_srcdir/include" "$dir/example.c" -o "$dir/example" \
	-L"$top_builddir/.libs" -lweft -Wl,-rpath,"$top_builddir/.libs"
out=$(WEFT_WORKERS=2 "$dir/example")
echo "$out"
[ "$out" = "fib(40) = 102334155" ]
