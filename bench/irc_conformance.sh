#!/usr/bin/env bash
# IRC client-protocol conformance: irctest's server tests (PyPI irctest 0.1.2,
# the release there; specifications RFC1459, RFC2812, IRCv3.1, IRCv3.2) run
# against `sockit chat serve --irc` and against ngircd (Debian's ngircd) in
# the same run, each on free loopback ports with its config in a tempdir;
# prints the pass counts side by side. Not in CI: it fetches irctest and its
# Python dependencies (psutil, limnoria for supybot.utils) with pip into a
# venv under target/irctest.
#
#   bash bench/irc_conformance.sh [--sockit PATH] [--spec RFC1459,RFC2812,IRCv3.1,IRCv3.2] [-v]
#
# irctest 0.1.2's sdist does not build (its setup.py reads a requirements.txt
# the sdist lacks): the script takes the package from the unpacked sdist
# that `pip download --no-clean` leaves behind.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}"
sockit="$target/debug/sockit"
specs="RFC1459,RFC2812,IRCv3.1,IRCv3.2"
verbose=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sockit) sockit="$2"; shift 2 ;;
        --spec) specs="$2"; shift 2 ;;
        -v) verbose="-v"; shift ;;
        *) echo "irc_conformance: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$sockit" ] || { echo "irc_conformance: no $sockit (cargo build first)" >&2; exit 2; }
command -v ngircd >/dev/null || { echo "irc_conformance: ngircd is not installed (apt-get install ngircd)" >&2; exit 2; }

work="$target/irctest"
venv="$work/venv"
mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c 'import psutil, supybot.utils' 2>/dev/null; then
    "$py" -m pip install --quiet psutil limnoria
fi
if [ ! -d "$work/pkg/irctest" ]; then
    tmp="$(mktemp -d)"
    (cd "$tmp" && TMPDIR="$tmp" "$py" -m pip download --no-clean --no-deps irctest==0.1.2 >/dev/null 2>&1 || true)
    src="$(ls -d "$tmp"/pip-download-*/irctest_*/irctest 2>/dev/null | head -1)"
    [ -n "$src" ] || { echo "irc_conformance: could not fetch irctest 0.1.2" >&2; exit 2; }
    mkdir -p "$work/pkg"
    cp -r "$src" "$work/pkg/"
    rm -rf "$tmp"
fi

# Controllers: how irctest starts each server.
cat > "$work/pkg/sockit_controller.py" <<'PY'
import os, socket, subprocess
from irctest.basecontrollers import BaseServerController, DirectoryBasedController, NotImplementedByController

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class SockitController(BaseServerController, DirectoryBasedController):
    software_name = "sockit"
    supported_sasl_mechanisms = set()
    def run(self, hostname, port, password=None, ssl=False,
            valid_metadata_keys=None, invalid_metadata_keys=None):
        if valid_metadata_keys or invalid_metadata_keys:
            raise NotImplementedByController("METADATA")
        if ssl:
            raise NotImplementedByController("TLS")
        assert self.proc is None
        self.create_config()
        self.port = port
        cmd = [os.environ["SOCKIT"], "chat", "serve", "--no-console", "--rate", "0",
               "--irc", "%s:%d" % (hostname, port), "127.0.0.1:%d" % free_port()]
        if password:
            cmd += ["--irc-password", password]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def get_irctest_controller_class():
    return SockitController
PY
cat > "$work/pkg/ngircd_controller.py" <<'PY'
import os, subprocess
from irctest.basecontrollers import BaseServerController, DirectoryBasedController, NotImplementedByController

CONFIG = """
[Global]
    Name = ngircd.test
    Info = irctest
    Listen = {hostname}
    Ports = {port}
    {password}
[Limits]
    MaxNickLength = 32
    PingTimeout = 120
    PongTimeout = 60
    ConnectRetry = 60
[Options]
    PAM = no
    Ident = no
    DNS = no
    MorePrivacy = no
[SSL]
"""

class NgircdController(BaseServerController, DirectoryBasedController):
    software_name = "ngircd"
    supported_sasl_mechanisms = set()
    def run(self, hostname, port, password=None, ssl=False,
            valid_metadata_keys=None, invalid_metadata_keys=None):
        if valid_metadata_keys or invalid_metadata_keys:
            raise NotImplementedByController("METADATA")
        if ssl:
            raise NotImplementedByController("TLS")
        assert self.proc is None
        self.create_config()
        self.port = port
        with self.open_file("ngircd.conf") as f:
            f.write(CONFIG.format(hostname=hostname, port=port,
                                  password="Password = %s" % password if password else ""))
        self.proc = subprocess.Popen(["ngircd", "--nodaemon", "--config",
                                      os.path.join(self.directory, "ngircd.conf")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

def get_irctest_controller_class():
    return NgircdController
PY

run_one() {
    local name="$1" log="$work/$1.log"
    local args=()
    IFS=, read -ra list <<< "$specs"
    for s in "${list[@]}"; do args+=(--specification "$s"); done
    (cd "$work/pkg" && SOCKIT="$sockit" timeout 900 "$py" -m irctest "${name}_controller" "${args[@]}" $verbose) >"$log" 2>&1 || true
    # unittest's summary: "Ran N tests", then "OK" or "FAILED (failures=F, errors=E, skipped=S)".
    local ran fail err skip
    ran=$(grep -oE '^Ran [0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
    fail=$(grep -oE 'failures=[0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
    err=$(grep -oE 'errors=[0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
    skip=$(grep -oE 'skipped=[0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
    ran=${ran:-0}; fail=${fail:-0}; err=${err:-0}; skip=${skip:-0}
    local passed=$((ran - fail - err - skip))
    printf '%-8s passed %3d of %3d run (%d failed, %d errors, %d skipped: not implemented by the controller or the server)  log: %s\n' \
        "$name" "$passed" "$ran" "$fail" "$err" "$skip" "$log"
}

echo "irctest 0.1.2, specifications $specs"
run_one sockit
run_one ngircd
