#!/usr/bin/env python3
"""Chat benchmark, web front-end: WebSocket members next to line members of
the same `sockit chat serve --web` binary, run after run.

    fanout1000   1000 members, 10 senders, 500 lines of 64 bytes each, closed
                 loop: deliveries/s and latency p99, once with line members
                 (`--format sockit` on the line listener), once with WebSocket
                 members (`--format web` on the web listener), each against a
                 fresh server
    idle10k      10,000 idle WebSocket members: connect time (and the time
                 until the join announcements die down), and server RSS per
                 member ((RSS idle - RSS before) / members); the same storm of
                 10,000 line members alongside, for scale

The load is the `chatload` example (examples/chatload.rs). Prints one line per
run and a summary with the medians; the target for an idle WebSocket member is
at most 16 KiB of server RSS.

    cargo build --release --bin sockit --example chatload
    python3 bench/chat_web.py [--runs 3] [--only fanout1000,idle10k]

Where the load generator and the server share the cores, the server's own CPU
time (utime+stime from /proc/PID/stat, first send to last delivery) per
delivery is printed next to the generator's, for line and web alike.
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

FANOUT = ["--clients", "1000", "--senders", "10", "--messages", "500", "--bytes", "64"]
IDLE = ["--clients", "10000", "--senders", "0", "--messages", "0", "--connect-concurrency", "64",
        "--settle-timeout", "120"]


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, sockit):
        self.line, self.web = free_port(), free_port()
        self.log = tempfile.TemporaryFile()
        cmd = [sockit, "chat", "serve", "--no-console", "--rate", "0", "--max-clients", "20000",
               "--web", "%s:%d" % (HOST, self.web), "%s:%d" % (HOST, self.line)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.monotonic() + 10
        while not self.started():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sockit did not start")
            time.sleep(0.02)

    def started(self):
        self.log.seek(0)
        return b"chat web page on" in self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chatload(chatload_bin, srv, fmt, args):
    port = srv.web if fmt == "web" else srv.line
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="fanout1000,idle10k")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"))
    ap.add_argument("--chatload", default=os.path.join(TARGET, "release", "examples", "chatload"))
    a = ap.parse_args()
    only = a.only.split(",")
    ok = True
    if "fanout1000" in only:
        got = {"line": [], "web": []}
        for i in range(a.runs):
            for fmt in ("line", "web"):
                r = run(a.sockit, a.chatload, "sockit" if fmt == "line" else "web", FANOUT)
                ok &= bool(r.get("complete"))
                got[fmt].append(r)
                print("fanout1000 run %d %-4s: %s deliveries/s, p99 %s ms, connect %s s, "
                      "CPU per delivery: server %s ns, load generator %s ns%s" % (
                          i + 1, fmt, r.get("deliveries_per_s"),
                          None if r.get("lat_p99_us") is None else round(r["lat_p99_us"] / 1000, 1),
                          r.get("connect_s"), r.get("server_ns_per_delivery"),
                          r.get("load_ns_per_delivery"),
                          "" if r.get("complete") else " INCOMPLETE: %s" % r.get("error")),
                      flush=True)
        med = {f: statistics.median([r.get("deliveries_per_s", 0) for r in got[f]]) for f in got}
        p99 = {f: statistics.median([r.get("lat_p99_us") or 0 for r in got[f]]) / 1000 for f in got}
        cpu = {f: statistics.median([r.get("server_ns_per_delivery") or 0 for r in got[f]]) for f in got}
        gen = {f: statistics.median([r.get("load_ns_per_delivery") or 0 for r in got[f]]) for f in got}
        ratio = med["web"] / med["line"] if med["line"] else 0
        print("fanout1000: line %.0f deliveries/s (p99 %.1f ms), web %.0f deliveries/s (p99 %.1f ms): "
              "web/line %.2f (target >= 0.5)" % (med["line"], p99["line"], med["web"], p99["web"], ratio))
        print("fanout1000: server CPU per delivery: line %.0f ns, web %.0f ns (web/line %.2f); "
              "load generator: line %.0f ns, web %.0f ns" % (
                  cpu["line"], cpu["web"], cpu["web"] / cpu["line"] if cpu["line"] else 0,
                  gen["line"], gen["web"]))
        ok &= ratio >= 0.5
    if "idle10k" in only:
        per, conn, settle, line_conn, line_settle = [], [], [], [], []
        for i in range(a.runs):
            # The same storm of joins through the line listener, for scale.
            lr = run(a.sockit, a.chatload, "sockit", IDLE)
            if lr.get("ok"):
                line_conn.append(lr.get("connect_s"))
                line_settle.append(lr.get("settle_s"))
            r = run(a.sockit, a.chatload, "web", IDLE)
            base, idle = r.get("rss_base_kib"), r.get("rss_idle_kib")
            if base is None or idle is None or not r.get("ok"):
                print("idle10k run %d: failed: %s" % (i + 1, r.get("error")))
                ok = False
                continue
            per.append((idle - base) / 10000 * 1024)
            conn.append(r.get("connect_s"))
            settle.append(r.get("settle_s"))
            print("idle10k run %d: web connect %.2f s + settle %.2f s, RSS %d -> %d KiB: %.0f bytes "
                  "per member; line connect %s s + settle %s s" % (
                      i + 1, r["connect_s"], r["settle_s"], base, idle, per[-1],
                      lr.get("connect_s"), lr.get("settle_s")), flush=True)
        if per:
            m = statistics.median(per)
            print("idle10k: 10,000 WebSocket members connect in %.2f s (+%.2f s until the join "
                  "announcements stop); %.1f KiB of server RSS each (target <= 16 KiB)" % (
                      statistics.median(conn), statistics.median(settle), m / 1024))
            if line_conn:
                print("idle10k: 10,000 line members connect in %.2f s (+%.2f s), same runs" % (
                    statistics.median(line_conn), statistics.median(line_settle)))
            ok &= m <= 16 * 1024
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
