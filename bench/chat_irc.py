#!/usr/bin/env python3
"""Chat benchmark, IRC front-end: IRC members next to line members of the
same `sockit chat serve --irc` binary, run after run.

    fanout1000   1000 members in one room, 10 senders, 2000 lines of 64 bytes
                 each, closed loop: deliveries/s, latency p99 and the server's
                 own CPU time per delivery (utime+stime from /proc/PID/stat
                 over the send phase: the generator shares the cores), once
                 with line members (`--format sockit` on the line listener),
                 once with IRC members (`--format irc`, `PRIVMSG #lobby` on
                 the IRC listener), each against a fresh server
    register1000 1000 IRC clients register (CAP LS 302, NICK, USER, CAP END,
                 until 001; 64 at a time) against a fresh server: wall time
                 and server CPU, next to 1000 line clients greeted

The load is the `chatload` example (examples/chatload.rs). Prints one line per
run and a summary with the medians and ratios; the targets are IRC fan-out at
least 0.5x the line protocol's and 1000 registrations under 1 s.

    cargo build --release --bin sockit --example chatload
    python3 bench/chat_irc.py [--runs 5] [--only fanout1000,register1000]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
HOST = "127.0.0.1"

FANOUT = ["--clients", "1000", "--senders", "10", "--messages", "2000", "--bytes", "64"]
REGISTER = ["--clients", "1000", "--senders", "0", "--messages", "0", "--connect-concurrency", "64",
            "--quiet-ms", "100", "--irc-join", ""]


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, sockit):
        self.line, self.irc = free_port(), free_port()
        self.log = tempfile.TemporaryFile()
        cmd = [sockit, "chat", "serve", "--no-console", "--rate", "0", "--max-clients", "20000",
               "--irc-ping", "0", "--irc", "%s:%d" % (HOST, self.irc), "%s:%d" % (HOST, self.line)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.monotonic() + 10
        while not self.started():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sockit did not start")
            time.sleep(0.02)

    def started(self):
        for port in (self.irc, self.line):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
            except OSError:
                return False
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chatload(chatload_bin, srv, fmt, args):
    port = srv.irc if fmt == "irc" else srv.line
    cmd = [chatload_bin, "%s:%d" % (HOST, port), "--format", fmt,
           "--server-pid", str(srv.proc.pid)] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = p.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": p.stderr.strip()[-300:]}


def run(sockit, chatload_bin, fmt, args):
    srv = Server(sockit)
    try:
        return chatload(chatload_bin, srv, fmt, args)
    finally:
        srv.stop()


def cpu_per_delivery_us(r):
    if r.get("server_cpu_s") is None or not r.get("received"):
        return None
    return r["server_cpu_s"] / r["received"] * 1e6


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="fanout1000,register1000")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"))
    ap.add_argument("--chatload", default=os.path.join(TARGET, "release", "examples", "chatload"))
    a = ap.parse_args()
    only = a.only.split(",")
    ok = True
    if "fanout1000" in only:
        got = {"line": [], "irc": []}
        for i in range(a.runs):
            for kind in ("line", "irc"):
                r = run(a.sockit, a.chatload, "sockit" if kind == "line" else "irc", FANOUT)
                ok &= bool(r.get("complete"))
                got[kind].append(r)
                print("fanout1000 run %d %-4s: %s deliveries/s, p99 %s ms, server CPU %s s = %s us/delivery%s" % (
                    i + 1, kind, r.get("deliveries_per_s"),
                    None if r.get("lat_p99_us") is None else round(r["lat_p99_us"] / 1000, 1),
                    r.get("server_cpu_s"), fmt_num(cpu_per_delivery_us(r), ".3f"),
                    "" if r.get("complete") else " INCOMPLETE: %s" % r.get("error")),
                    flush=True)
        rate = {k: med([r.get("deliveries_per_s", 0) for r in got[k]]) for k in got}
        p99 = {k: (med([r.get("lat_p99_us") for r in got[k]]) or 0) / 1000 for k in got}
        cpu = {k: med([cpu_per_delivery_us(r) for r in got[k]]) for k in got}
        ratio = rate["irc"] / rate["line"] if rate["line"] else 0
        cpu_ratio = cpu["irc"] / cpu["line"] if cpu["irc"] and cpu["line"] else None
        print("fanout1000 medians of %d: line %.0f deliveries/s (p99 %.1f ms, %s us CPU/delivery), "
              "irc %.0f deliveries/s (p99 %.1f ms, %s us CPU/delivery)"
              % (a.runs, rate["line"], p99["line"], fmt_num(cpu["line"], ".3f"),
                 rate["irc"], p99["irc"], fmt_num(cpu["irc"], ".3f")))
        print("fanout1000: irc/line deliveries/s %.2fx (target >= 0.5), server CPU per delivery irc/line %s"
              % (ratio, fmt_num(cpu_ratio, ".2f") + "x"))
        ok &= ratio >= 0.5
    if "register1000" in only:
        got = {"line": [], "irc": []}
        for i in range(a.runs):
            for kind in ("line", "irc"):
                args = REGISTER if kind == "irc" else REGISTER[:-2]
                r = run(a.sockit, a.chatload, "sockit" if kind == "line" else "irc", args)
                if not r.get("ok"):
                    print("register1000 run %d %s: failed: %s" % (i + 1, kind, r.get("error")))
                    ok = False
                    continue
                got[kind].append(r)
                print("register1000 run %d %-4s: %.3f s, greeting p50 %s ms max %s ms, server CPU %s s" % (
                    i + 1, kind, r["connect_s"], fmt_num(r.get("greet_p50_ms"), ".2f"),
                    fmt_num(r.get("greet_max_ms"), ".1f"), r.get("cpu_connect_s")), flush=True)
        wall = {k: med([r["connect_s"] for r in got[k]]) for k in got}
        cpu = {k: med([r.get("cpu_connect_s") for r in got[k]]) for k in got}
        if wall["irc"] is not None:
            print("register1000 medians: 1000 IRC clients registered in %.3f s (server CPU %s s; target < 1 s); "
                  "1000 line clients greeted in %s s (server CPU %s s); irc/line time %s"
                  % (wall["irc"], fmt_num(cpu["irc"], ".3f"), fmt_num(wall["line"], ".3f"),
                     fmt_num(cpu["line"], ".3f"),
                     fmt_num(wall["irc"] / wall["line"] if wall["line"] else None, ".2f") + "x"))
            ok &= wall["irc"] < 1.0
        else:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
