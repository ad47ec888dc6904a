#!/bin/sh
# Writes the seed corpus of the fuzz targets: valid and invalid requests (the
# engine tests' cases and the hardening list) for fuzz_request, and targets,
# ranges, dates and entity tags for fuzz_static_path.  Seeds are plain bytes;
# the fuzzers derive their split points and schedules from them.
# Usage: scripts/fuzz-corpus.sh [DIR]     (default build/fuzz/corpus)
set -eu
dir=${1:-build/fuzz/corpus}
req=$dir/fuzz_request
sp=$dir/fuzz_static_path
rm -rf "$req" "$sp"
mkdir -p "$req" "$sp"

n=0
# seed DIR ESCAPED-BYTES: printf %b expands \r \n \xHH \0NNN.
seed() {
    n=$((n + 1))
    printf '%b' "$2" >"$1/seed-$(printf %03d $n)"
}
r() { seed "$req" "$1"; }
s() { seed "$sp" "$1"; }

H='Host: x\r\n'
# ---- valid requests, built-in routes and the fuzzer's docroot
r "GET /plaintext HTTP/1.1\r\n$H\r\n"
r "GET /json HTTP/1.1\r\n$H\r\n"
r "GET /_catzilla/health HTTP/1.1\r\n$H\r\n"
r "GET /_catzilla/stats HTTP/1.1\r\n${H}Connection: close\r\n\r\n"
r "HEAD /plaintext HTTP/1.1\r\n$H\r\nGET /json HTTP/1.1\r\n$H\r\n"
r "POST /echo HTTP/1.1\r\n${H}Content-Type: application/x-test\r\nContent-Length: 11\r\n\r\nhello world"
r "PUT /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=1;b\r\nhello\r\n2 ;c=\"x y\"\r\nab\r\n0\t;d\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 4\r\nExpect: 100-continue\r\n\r\nping"
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /plaintext HTTP/1.1\r\n$H\r\n"
r "GET /plaintext HTTP/1.0\r\n\r\n"
r "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
r "GET /plaintext HTTP/1.1\r\n${H}Connection: close\r\n\r\nGET /json HTTP/1.1\r\n$H\r\n"
r "\r\n\r\nGET /plaintext HTTP/1.1\r\n$H\r\n"
r "DELETE /plaintext HTTP/1.1\r\n$H\r\n"
r "OPTIONS * HTTP/1.1\r\n$H\r\n"
r "CONNECT x:443 HTTP/1.1\r\n$H\r\n"
r "GET /chat HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
r "GET /no/such/thing HTTP/1.1\r\n$H\r\n"
r "GET / HTTP/1.1\r\n$H\r\n"
r "GET /a.txt?x=1 HTTP/1.1\r\n$H\r\n"
r "GET /zc.bin HTTP/1.1\r\n$H\r\nGET /zc.bin HTTP/1.1\r\n$H\r\n"
r "GET /big.bin HTTP/1.1\r\n$H\r\nGET /a.txt HTTP/1.1\r\n$H\r\n"
r "HEAD /big.bin HTTP/1.1\r\n$H\r\n"
r "GET /sub HTTP/1.1\r\n$H\r\nGET /sub/ HTTP/1.1\r\n$H\r\nGET /empty/ HTTP/1.1\r\n$H\r\n"
r "GET /.hidden HTTP/1.1\r\n$H\r\nGET /%2e%2e/etc/passwd HTTP/1.1\r\n$H\r\n"
r "GET /a.txt HTTP/1.1\r\n${H}Range: bytes=0-5\r\n\r\n"
r "GET /big.bin HTTP/1.1\r\n${H}Range: bytes=0-5, 100-200, -10\r\n\r\n"
r "GET /zc.bin HTTP/1.1\r\n${H}Range: bytes=5000-\r\n\r\n"
r "GET /a.txt HTTP/1.1\r\n${H}If-None-Match: \"x\", W/\"y\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
r "GET /a.txt HTTP/1.1\r\n${H}If-Match: \"nope\"\r\n\r\n"
r "GET /a.txt HTTP/1.1\r\n${H}Range: bytes=1-2\r\nIf-Range: \"abc\"\r\n\r\n"
# stats gathers (deferred answers from the other worker) and the file engine
r "GET /_catzilla/stats HTTP/1.1\r\n$H\r\nGET /plaintext HTTP/1.1\r\n$H\r\n"
r "HEAD /_catzilla/stats HTTP/1.1\r\n$H\r\nGET /_catzilla/stats HTTP/1.0\r\n\r\n"
r "GET /_catzilla/stats HTTP/1.1\r\n$H\r\nGET /_catzilla/stats HTTP/1.1\r\n$H\r\nGET /big.bin HTTP/1.1\r\n$H\r\n"
r "GET /huge.bin HTTP/1.1\r\n$H\r\nGET /huge.bin HTTP/1.1\r\n${H}Range: bytes=1000-69000\r\n\r\n"
r "GET /huge.bin HTTP/1.1\r\n${H}Range: bytes=0-10, 65530-65540, -3\r\n\r\nGET /_catzilla/stats HTTP/1.1\r\n$H\r\n"
# file jobs (open, statx, read through the ring) and several connections per
# input: the pieces between "\n--conn--\n" go to different connections
C='\n--conn--\n'
r "GET /big.bin HTTP/1.1\r\n$H\r\nGET /plaintext HTTP/1.1\r\n$H\r\nGET /a.txt HTTP/1.1\r\n$H\r\n${C}GET /a.txt HTTP/1.1\r\n$H\r\nGET /zc.bin HTTP/1.1\r\n$H\r\n"
r "GET /zc.bin HTTP/1.1\r\n$H\r\nGET /json HTTP/1.1\r\n$H\r\nGET /zc.bin HTTP/1.1\r\n$H\r\nHEAD /a.txt HTTP/1.1\r\n$H\r\nGET /_catzilla/health HTTP/1.1\r\n$H\r\n"
r "GET /sub/ HTTP/1.1\r\n$H\r\nGET /index.html HTTP/1.1\r\n$H\r\n${C}GET /huge.bin HTTP/1.1\r\n${H}Range: bytes=100-200\r\n\r\nGET / HTTP/1.1\r\n$H\r\n${C}GET /big.bin HTTP/1.1\r\n${H}Connection: close\r\n\r\n"
r "GET /a.txt HTTP/1.1\r\n${H}If-None-Match: \"x\"\r\n\r\nGET /sub/index.html HTTP/1.1\r\n$H\r\nGET /nope.txt HTTP/1.1\r\n$H\r\nGET /empty/ HTTP/1.1\r\n$H\r\n${C}GET /zc.bin HTTP/1.1\r\n${H}Range: bytes=0-1,5-9\r\n\r\n"
r "GET /big.bin HTTP/1.1\r\n$H\r\nGET /big.bin HTTP/1.1\r\n$H\r\nGET /huge.bin HTTP/1.1\r\n$H\r\n${C}GET /huge.bin HTTP/1.1\r\n$H\r\n${C}GET /_catzilla/stats HTTP/1.1\r\n$H\r\nGET /big.bin HTTP/1.1\r\n$H\r\n"
pipe=""
for p in /plaintext /json /_catzilla/health /nope / /index.html /zc.bin /big.bin; do
    pipe="${pipe}GET $p HTTP/1.1\r\n$H\r\n"
done
r "$pipe$pipe"

# ---- the hardening list: every one is an error answered with Connection: close
r "GET /plaintext HTTP/1.1\r\nHo"
r "GET /$(printf 'a%.0s' $(seq 1 300)) HTTP/1.1\r\n$H\r\n"
r "GET / HTTP/1.1\r\n${H}X-Big: $(printf 'v%.0s' $(seq 1 1100))\r\n\r\n"
many=""
for i in $(seq 1 20); do many="${many}X-H$i: v\r\n"; done
r "GET / HTTP/1.1\r\n$H$many\r\n"
r "GET / HTTP/1.1\r\n\r\n"
r "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X[]: y\r\n\r\n"
r "GET / HTTP/1.1\r\n$H: empty-name\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X-A\0: y\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X-A: y\0z\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X-A: y\rz\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X-A: y\007z\r\n\r\n"
r "GET / HTTP/1.1\r\n${H}X-A: y\r\n  folded\r\n\r\n"
r "GET / HTTP/1.1\r\nHost : x\r\n\r\n"
r "GET / HTTP/1.1\r\nHost: x\rX-A: y\r\n\r\n"
for cl in abc -1 +5 0x10 "1 2" "2, 2" 99999999999999999999999; do
    r "POST /echo HTTP/1.1\r\n${H}Content-Length: $cl\r\n\r\nxx"
done
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n"
r "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n"
r "POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 5000\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
r "POST /echo HTTP/1.1\r\n${H}Expect: magic\r\nContent-Length: 1\r\n\r\nx"
r "GET / HTTP/2.0\r\n$H\r\n"
r "GET / HTTP/9.9\r\n$H\r\n"
r "GET /\r\n$H\r\n"
r "GET / HTTX/1.1\r\n$H\r\n"
r "GET / HTTP/1.x\r\n$H\r\n"
r "GE(T / HTTP/1.1\r\n$H\r\n"
r "FROB / HTTP/1.1\r\n$H\r\n"
r "GET /a b HTTP/1.1\r\n$H\r\n"
r "GET /a\001b HTTP/1.1\r\n$H\r\n"
r "GET /a\177b HTTP/1.1\r\n$H\r\n"
r "GET /%zz HTTP/1.1\r\n$H\r\n"
r "GET /%00 HTTP/1.1\r\n$H\r\n"
r "GET /plaintext%zz HTTP/1.1\r\n$H\r\n"
r "\026\003\001\002\000\001\000\001\374\003\003"
r "\001\002\003\377\376\r\n\r\n"
r "GET /plaintext HTTP/1.1\r\n$H\r\nGET / HTTP/9.9\r\n$H\r\nGET /json HTTP/1.1\r\n$H\r\n"

# ---- fuzz_static_path: target \n range \n date \n if-match list \n etag
s "/index.html\nbytes=0-99\nSun, 06 Nov 1994 08:49:37 GMT\n\"a\", W/\"b\"\n\"a\""
s "/a/b/../c/./d//e/\nbytes=-5\nSunday, 06-Nov-94 08:49:37 GMT\n*\n\"x\""
s "/%2e%2e/%2E%2e/etc/passwd\nbytes=0-0,2-3,1-1\nSun Nov  6 08:49:37 1994\nW/\"x\"\nW/\"x\""
s "/.well-known/x\nBYTES = 1-2 , , 5-\n Thu, 01 Jan 1970 00:00:00 GMT \n,,\"a\",,\n\"a\""
s "/a%2fb%5cc\nbytes=18446744073709551615-\nFri, 31 Dec 9999 23:59:59 GMT\n\"\n\"\""
s "/%252e%00/\nbytes=5-1\nMon, 32 Jan 2020 00:00:00 GMT\n\"a\" \"b\"\n\"b\""
s "//..//..\nitems=0-1\nTue, 29 Feb 2000 12:00:00 GMT\nW/\n\"\""
s "/a/%2E/b/%2e%2E/\nbytes=0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1\nWed, 28 Feb 2001 00:00:00 GMT\n\"x\",\"y\",\"z\"\n\"z\""
s "relative\nbytes=\n\n\n"
s "/\n\n\n\n"
echo "fuzz-corpus: $(ls "$req" | wc -l) request seeds, $(ls "$sp" | wc -l) path seeds in $dir"
