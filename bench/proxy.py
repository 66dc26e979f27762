#!/usr/bin/env python3
"""Throughput through real proxies: sockit connect -x next to ncat --proxy and
nc.openbsd -X, the same proxy and target in the same run.

A target (socat) sends N MiB to each client and closes; each client reaches it
through dante (SOCKS5, no authentication) and through tinyproxy (HTTP CONNECT),
both started here on free loopback ports with configs in a temp dir, and writes
what it receives to /dev/null. Runs are interleaved (run 1 of every client, then
run 2 ...) so noise hits all alike; the figures are medians. Besides wall time,
the client's own CPU time (user+system, from wait4) per GiB: the proxy's and the
target's work is the same for every client.

Needs root for danted (user.privileged). Standard library only; Linux only.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
LIVE = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def start(argv):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    LIVE.append(p)
    return p


def stop_all():
    for p in LIVE:
        try:
            os.killpg(p.pid, 15)
        except OSError:
            pass
    for p in LIVE:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)


def run_client(argv, size, limit=300.0):
    """Wall seconds and client CPU seconds; checks the byte count."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    got = 0
    while True:
        chunk = p.stdout.read1(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        if time.monotonic() - t0 > limit:
            p.kill()
            break
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace").strip()
    p.returncode = os.waitstatus_to_exitcode(status)
    if got != size:
        sys.exit(f"{argv[0]}: got {got} of {size} bytes (exit {p.returncode}) {err}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockit", default="target/release/sockit")
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py: danted needs root here")
    for tool in ["danted", "tinyproxy", "socat", "ncat", "nc.openbsd"]:
        if not shutil.which(tool):
            sys.exit(f"bench/proxy.py: {tool} is not installed")
    size = a.size_mib * MIB
    tmp = tempfile.mkdtemp(prefix="sockit-proxy-bench-")
    try:
        data = os.path.join(tmp, "data")
        with open(data, "wb") as f:
            block = os.urandom(MIB)
            for _ in range(a.size_mib):
                f.write(block)
        tport = free_port()
        # Listen first, so each forked child opens the file itself (one file
        # opened before the fork would share its offset among all clients).
        start(["socat", "-U", f"TCP-LISTEN:{tport},bind=127.0.0.1,reuseaddr,fork", f"FILE:{data}"])
        dport = free_port()
        with open(os.path.join(tmp, "danted.conf"), "w") as f:
            f.write(f"logoutput: {tmp}/danted.log\ninternal: 127.0.0.1 port = {dport}\n"
                    "external: 127.0.0.1\nsocksmethod: none\nclientmethod: none\n"
                    "user.privileged: root\nuser.unprivileged: nobody\n"
                    "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                    "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }\n")
        start(["danted", "-f", f"{tmp}/danted.conf", "-p", f"{tmp}/danted.pid"])
        hport = free_port()
        os.chmod(tmp, 0o777)
        with open(os.path.join(tmp, "tinyproxy.conf"), "w") as f:
            f.write(f"User nobody\nGroup nogroup\nPort {hport}\nListen 127.0.0.1\n"
                    f"Timeout 600\nLogLevel Warning\nMaxClients 20\nAllow 127.0.0.1\n")
        start(["tinyproxy", "-d", "-c", f"{tmp}/tinyproxy.conf"])
        for port in (tport, dport, hport):
            wait_listening(port)

        target = ["127.0.0.1", str(tport)]
        cases = {
            "socks5": {
                "sockit": [a.sockit, "connect", "--recv-only", "-x",
                           f"socks5://127.0.0.1:{dport}", f"127.0.0.1:{tport}"],
                "ncat": ["ncat", "--recv-only", "--proxy", f"127.0.0.1:{dport}",
                         "--proxy-type", "socks5", *target],
                "nc.openbsd": ["nc.openbsd", "-d", "-X", "5", "-x", f"127.0.0.1:{dport}",
                               *target],
            },
            "http CONNECT": {
                "sockit": [a.sockit, "connect", "--recv-only", "-x",
                           f"http://127.0.0.1:{hport}", f"127.0.0.1:{tport}"],
                "ncat": ["ncat", "--recv-only", "--proxy", f"127.0.0.1:{hport}",
                         "--proxy-type", "http", *target],
                "nc.openbsd": ["nc.openbsd", "-d", "-X", "connect", "-x",
                               f"127.0.0.1:{hport}", *target],
            },
        }
        print(f"{a.size_mib} MiB through each proxy, {a.runs} runs each, medians")
        for proxy, clients in cases.items():
            walls = {name: [] for name in clients}
            cpus = {name: [] for name in clients}
            names = list(clients)
            for r in range(a.runs):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    w, c = run_client(clients[name], size)
                    walls[name].append(w)
                    cpus[name].append(c)
            print(f"\n{proxy}:")
            print(f"  {'client':<12} {'wall s':>8} {'MB/s':>8} {'x ncat':>7} {'client CPU ms/GiB':>18}")
            base = statistics.median(walls["ncat"])
            for name in names:
                w = statistics.median(walls[name])
                c = statistics.median(cpus[name])
                print(f"  {name:<12} {w:8.2f} {size / w / 1e6:8.0f} {base / w:7.2f} "
                      f"{c * 1000 / (size / (1 << 30)):18.0f}")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
