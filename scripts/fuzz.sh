#!/bin/sh
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan +
# libFuzzer), regenerates their seed corpus (scripts/fuzz-corpus.sh), runs
# each for SECONDS, and prints executions and crashes per target.  Exits 1 if
# any target crashed (the input is kept in build/fuzz/crashes/<target>/).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (make fuzz FUZZ_SECONDS=N)
# Environment: FUZZ_CC (clang), FUZZ_ALLOCATOR=libc|jemalloc (libc: every
#   arena allocation goes through malloc, so ASan and LeakSanitizer see it),
#   FUZZ_JOBS (parallel compiles, 2), FUZZ_ARGS (extra libFuzzer flags),
#   LLHTTP_DIR / LLHTTP_INC as in the Makefile.
# Reproduce a crash: build/fuzz/<target> build/fuzz/crashes/<target>/crash-...
set -u
cd "$(dirname "$0")/.."

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_request fuzz_static_path"}
out=build/fuzz
llhttp_dir=${LLHTTP_DIR:-/usr/share/llhttp}
llhttp_inc=${LLHTTP_INC:-/usr/share/include/llhttp}
allocator=${FUZZ_ALLOCATOR:-libc}

cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
    for c in clang clang-14; do
        command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }
    done
fi
if [ -z "$cc" ] || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
        "$cc" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
    scripts/deps.sh fuzz || exit 1
    cc=${FUZZ_CC:-clang}
fi

case "$allocator" in
    libc)     adef="-DCZ_ALLOCATOR_LIBC=1"; alib="" ;;
    jemalloc) adef="-DCZ_ALLOCATOR_JEMALLOC=1"; alib="-ljemalloc" ;;
    *)        echo "fuzz.sh: FUZZ_ALLOCATOR must be libc or jemalloc" >&2; exit 2 ;;
esac

# llhttp is built as the Makefile builds it (strict mode once the Makefile asks for it).
llhttp_defs=""
grep -q 'LLHTTP_STRICT_MODE=1' Makefile && llhttp_defs="-DLLHTTP_STRICT_MODE=1"

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# CZ_FAULT_INJECTION: fuzz_request makes some runs fail every Nth allocation.
cflags="-O1 -g -std=gnu11 -D_GNU_SOURCE -pthread -DCZ_FUZZING=1 -DCZ_FAULT_INJECTION=1 $adef $san $llhttp_defs
        -Iinclude -Isrc -I$llhttp_inc"
objdir=$out/obj-$allocator
mkdir -p "$objdir" "$out/corpus" "$out/work" "$out/crashes" "$out/logs"
# Objects built with other flags are stale.
if [ "$(cat "$objdir/.flags" 2>/dev/null)" != "$cc $cflags" ]; then
    rm -f "$objdir"/*.o
    echo "$cc $cflags" >"$objdir/.flags"
fi

# ---- build: the library once (coverage-instrumented, no main), then each target
newest_hdr=$(ls -t $(find include src -name '*.h') | head -n 1)
build_list=$(mktemp)
trap 'rm -f "$build_list"' EXIT
for src in $(ls src/core/*.c src/http/*.c src/fs/*.c) \
           "$llhttp_dir/llhttp.c" "$llhttp_dir/api.c" "$llhttp_dir/http.c"; do
    case "$src" in
        "$llhttp_dir"/*) obj=$objdir/llhttp_$(basename "$src" .c).o ;;
        *)               obj=$objdir/$(echo "$src" | tr / _ | sed 's/\.c$//').o ;;
    esac
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_hdr" -nt "$obj" ]; then
        echo "$src $obj" >>"$build_list"
    fi
done
export cc cflags llhttp_dir
if [ -s "$build_list" ]; then
    echo "fuzz: compiling $(wc -l <"$build_list") files with $cc ($allocator allocator)"
    xargs -P "${FUZZ_JOBS:-2}" -n 2 sh -c '
        case "$0" in
            "$llhttp_dir"/*) extra="-w" ;;
            *) extra="-Wall -Wextra" ;;
        esac
        $cc $cflags -fsanitize=fuzzer-no-link $extra -c "$0" -o "$1" || exit 255
    ' <"$build_list" || { echo "fuzz: build failed" >&2; exit 1; }
fi
rm -f "$out/libcz-fuzz.a"
ar rcs "$out/libcz-fuzz.a" "$objdir"/*.o

for t in $targets; do
    extra=""
    # An error-level log line in the engine is a bug: the request target aborts on it.
    # pipe2 is wrapped so some inputs find the worker's pipe pool taken.
    # close and server_dispatch are wrapped to track file job descriptors and
    # the requests each connection dispatched.
    [ "$t" = fuzz_request ] && extra="-Wl,--wrap=cz_log -Wl,--wrap=pipe2 -Wl,--wrap=close -Wl,--wrap=server_dispatch"
    $cc $cflags -Wall -Wextra -fsanitize=fuzzer "tests/fuzz/$t.c" "$out/libcz-fuzz.a" \
        -o "$out/$t" $extra -luring $alib || { echo "fuzz: linking $t failed" >&2; exit 1; }
done

# ---- corpus, then the runs
scripts/fuzz-corpus.sh "$out/corpus" || exit 1

status=0
summary=""
for t in $targets; do
    case "$t" in
        fuzz_request) opts="-max_len=8192 -dict=tests/fuzz/http.dict" ;;
        *)            opts="-max_len=1024" ;;
    esac
    mkdir -p "$out/work/$t" "$out/crashes/$t"
    stamp=$out/logs/$t.start
    touch "$stamp"
    log=$out/logs/$t-$$.log
    echo "fuzz: $t for ${secs}s (log: $log)"
    # shellcheck disable=SC2086
    "$out/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=20 $opts \
        -artifact_prefix="$out/crashes/$t/" ${FUZZ_ARGS:-} \
        "$out/work/$t" "$out/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    crashes=$(find "$out/crashes/$t" -type f -newer "$stamp" | wc -l)
    [ $rc -ne 0 ] && [ $crashes -eq 0 ] && crashes=1
    if [ $crashes -ne 0 ]; then
        status=1
        echo "fuzz: $t CRASHED (exit $rc); the end of its log:"
        grep -v '^#[0-9]' "$log" | tail -n 40
        ls -t "$out/crashes/$t" | head -n 3 | sed "s|^|  input: $out/crashes/$t/|"
    fi
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ),$t,$secs,${execs:-0},$crashes" >>"$out/history.csv"
    summary="$summary$(printf '%-18s %6ss %12s executions %3d crashes' "$t" "$secs" \
        "${execs:-0}" "$crashes")
"
done
printf '%s' "$summary"
exit $status
