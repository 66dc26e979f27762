#!/usr/bin/env bash
# WebSocket conformance: the Autobahn TestSuite's cases, run by kosoku (the
# Python 3 runner of the same case files, from PyPI, installed in a venv
# under target/), against `sockit chat serve --web ... --web-echo` (the
# hidden echo endpoint, built from the chat's own WebSocket reader and
# frame encoders).
#
# Sections 1-7 (framing, pings/pongs, reserved bits, opcodes, fragmentation,
# UTF-8, close) in full, and section 9 (limits and performance) at the sizes
# --max-line allows (1 MiB, its highest value): 9.1.1-3, 9.2.1-3 (64 KiB to
# 1 MiB messages), 9.5.* and 9.6.* (1 MiB in chunks), 9.7.* and 9.8.* (1000
# messages). The 4-16 MiB cases (9.1.4-6, 9.2.4-6, 9.3, 9.4) are over any
# message the chat takes: it closes with 1009 instead of echoing them.
#
#   bench/autobahn.sh [--sockit PATH]     exit status 1 if any case fails
#
# Reports (HTML and JSON per case) go to target/autobahn/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
sockit="$target_dir/debug/sockit"
if [ "${1:-}" = "--sockit" ]; then
    sockit="$2"
    shift 2
fi
if [ ! -x "$sockit" ]; then
    (cd "$root" && cargo build --locked --bin sockit >&2)
fi

venv="$target_dir/autobahn-venv"
if [ ! -x "$venv/bin/kosoku" ]; then
    echo "autobahn: installing kosoku in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet kosoku
fi

out="$target_dir/autobahn"
rm -rf "$out"
mkdir -p "$out"
log="$out/server.log"
: >"$log"
"$sockit" chat serve --no-console --rate 0 \
    --max-line 1048576 --max-queue 4194304 \
    --web 127.0.0.1:0 --web-echo 127.0.0.1:0 </dev/null 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

addr=""
for _ in $(seq 1 200); do
    addr="$(sed -n 's|.*chat web page on http://\([^/]*\)/.*|\1|p' "$log")"
    [ -n "$addr" ] && break
    sleep 0.05
done
if [ -z "$addr" ]; then
    echo "autobahn: the server did not start:" >&2
    cat "$log" >&2
    exit 1
fi

cases=(-i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*'
       -i '9.1.1' -i '9.1.2' -i '9.1.3' -i '9.2.1' -i '9.2.2' -i '9.2.3'
       -i '9.5.*' -i '9.6.*' -i '9.7.*' -i '9.8.*')
SECONDS=0
set +e
"$venv/bin/kosoku" "${cases[@]}" -o "$out" "$addr" >"$out/summary.txt" 2>&1
status=$?
set -e
tail -n 40 "$out/summary.txt"
echo "autobahn: sections 1-7 and 9 (to 1 MiB) against $addr in ${SECONDS} s; reports in $out"
exit $status
