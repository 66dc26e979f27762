#!/usr/bin/env python3
"""Chat benchmark: `sockit chat serve` side by side with `ncat --chat`.

Every scenario runs against a fresh server on 127.0.0.1 (an ephemeral port), the
two servers interleaved run by run, and the table shows medians over the runs
with the ratio sockit/ncat. The load comes from the `chatload` example
(examples/chatload.rs), which prints one JSON line per run.

    cargo build --release --bin sockit --example chatload
    python3 bench/chat.py              # or --build to run cargo first; bench/run chat does both
    python3 bench/chat.py --runs 5 --only tput100,lat
"""

import argparse
import json
import os
import resource
import shutil
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

# Connections in progress at once. ncat listens with a backlog of 10, so more
# than that in flight loses SYNs and measures TCP retransmit timers instead.
CONNECT_INFLIGHT = "8"

# name -> (servers, chatload arguments, what it is for)
SCENARIOS = {
    "tput100": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "5000", "--bytes", "64"],
        "deliveries/s, 100 clients, 10 senders, closed loop",
    ),
    # One line per write: the server cannot forward a sender's burst as one block.
    "tput100x1": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "5000", "--bytes", "64", "--batch", "1"],
        "deliveries/s, 100 clients, 10 senders writing one line at a time",
    ),
    "tput1000": (
        ("sockit", "ncat"),
        ["--clients", "1000", "--senders", "10", "--messages", "500", "--bytes", "64"],
        "deliveries/s and connect time, 1000 clients, 10 senders",
    ),
    "burst1000": (
        ("sockit",),
        ["--clients", "1000", "--senders", "0", "--messages", "0", "--connect-concurrency", "64"],
        "1000 clients connecting 64 at a time",
    ),
    "idle10k": (
        ("sockit",),
        ["--clients", "10000", "--senders", "0", "--messages", "0", "--connect-concurrency", "64",
         "--settle-timeout", "120"],
        "server RSS per idle client",
    ),
    "lat": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "300", "--rate", "1000"],
        "latency at a fixed 1000 lines/s in, 100 clients",
    ),
    # Few clients, so each one's socket carries a steady trickle of small
    # writes: where Nagle's algorithm meets delayed ACKs.
    "lat10": (
        ("sockit", "ncat"),
        ["--clients", "10", "--senders", "10", "--messages", "300", "--rate", "1000"],
        "latency at a fixed 1000 lines/s in, 10 clients",
    ),
    "lat_stalled": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "300", "--rate", "1000", "--stalled", "10"],
        "the same with 10 clients that never read",
    ),
    # 512-byte lines so each stalled client is sent ~20 MB: far more than the
    # kernel buffers on both ends of its socket (~4 MB + ~6 MB here).
    "big": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "4000", "--bytes", "512"],
        "closed loop, 512-byte lines",
    ),
    "big_stalled": (
        ("sockit", "ncat"),
        ["--clients", "100", "--senders", "10", "--messages", "4000", "--bytes", "512", "--stalled", "10",
         "--send-timeout", "20", "--drain-timeout", "5"],
        "the same with 10 clients that never read",
    ),
}

NOTES = {
    "backlog": "ncat listens with a backlog of 10 (Send-Q in `ss -ltn`): a wider burst overflows "
               "it, and the dropped handshakes wait on TCP retransmit timers (1 s, 3 s, ...)",
    "fdsetsize": "ncat --chat multiplexes with select(), so it cannot hold more than FD_SETSIZE "
                 "(1024) descriptors; not run",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listening(port):
    """True when /proc/net/tcp shows 127.0.0.1:port in LISTEN (state 0A)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def sockit_greets(port):
    """Connects a probe client and reads its welcome line."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return data.startswith(b"* welcome, you are ")
    except OSError:
        return False


class Server:
    """One server process on a fresh port; stopped on exit from the `with`."""

    def __init__(self, kind, sockit):
        self.kind = kind
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        if kind == "sockit":
            cmd = [sockit, "chat", "serve", "--no-console", "--rate", "0", "--max-clients", "20000",
                   "%s:%d" % (HOST, self.port)]
        else:
            cmd = ["ncat", "--chat", "-l", HOST, str(self.port), "--max-conns", "2000"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.monotonic() + 10
        ready = sockit_greets if kind == "sockit" else listening
        while not ready(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not start: %s" % (kind, self.tail()))
            time.sleep(0.02)

    def tail(self):
        self.log.seek(0)
        return self.log.read()[-400:].decode(errors="replace").strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_one(kind, name, bins):
    """Runs one scenario against a fresh server; returns chatload's JSON summary."""
    _, args, _ = SCENARIOS[name]
    with Server(kind, bins.sockit) as srv:
        # A flag given twice takes its last value: the scenario's win.
        cmd = [bins.chatload, "%s:%d" % (HOST, srv.port), "--format", kind,
               "--server-pid", str(srv.proc.pid), "--label", name,
               "--connect-concurrency", CONNECT_INFLIGHT] + args
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "chatload did not finish in 300 s"}
        alive = srv.proc.poll() is None
        died = None if alive else "server exited (%s): %s" % (srv.proc.returncode, srv.tail())
    lines = p.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])}
    res["rc"] = p.returncode
    res["cpu_pressure"] = cpu_pressure()
    res["human"] = lines[0] if len(lines) > 1 else ""
    if died:
        res["ok"], res["error"] = False, died
    return res


def cpu_pressure():
    """Share of the last 10 s in which some runnable task waited for a CPU (PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "M/s":
        return "%.2f M/s" % (v / 1e6)
    if unit == "s":
        return "%.3f s" % v
    if unit == "ms":
        return "%.2f ms" % v if v < 100 else "%.0f ms" % v
    if unit == "KiB":
        return "%.2f KiB" % v
    if unit == "MiB":
        return "%.1f MiB" % v
    if unit == "x":
        return "%.2fx" % v
    return str(v)


def spread(vals, unit):
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        return ""
    return "[%s..%s]" % (fmt(min(vals), unit), fmt(max(vals), unit))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, label, unit, sockit, ncat=None, target="", check=None, ncat_note=None):
        """sockit/ncat: lists of per-run values (None where a run gave none)."""
        s = median(sockit or [])
        n = median(ncat or []) if ncat is not None else None
        ratio = s / n if s is not None and n else None
        verdict = ""
        if check and s is not None:
            verdict = "met" if check(s) else "MISSED"
        self.rows.append((
            label,
            "%s %s" % (fmt(s, unit), spread(sockit or [], unit)),
            ncat_note if ncat_note else "%s %s" % (fmt(n, unit), spread(ncat or [], unit)),
            fmt(ratio, "x") if ratio is not None else "-",
            ("%s: %s" % (target, verdict)) if target else "",
        ))

    def print(self):
        head = ("metric (median [min..max] over runs)", "sockit", "ncat --chat", "sockit/ncat", "target")
        rows = [head] + [tuple(r) for r in self.rows]
        width = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for i, r in enumerate(rows):
            print("  ".join(c.ljust(width[j]) for j, c in enumerate(r)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in width))


def values(results, name, kind, key, ok_only=True):
    out = []
    for r in results.get((name, kind), []):
        if ok_only and not r.get("ok"):
            continue
        out.append(key(r) if callable(key) else r.get(key))
    return out


def report(results, runs):
    t = Table()
    us_to_ms = lambda k: (lambda r: r[k] / 1e3 if r.get(k) is not None else None)
    complete = lambda r: r["deliveries_per_s"] if r.get("complete") else None
    v = lambda n, k, key: values(results, n, k, key)

    t.add("deliveries/s, 100 clients / 10 senders", "M/s", v("tput100", "sockit", complete),
          v("tput100", "ncat", complete))
    t.add("  same, senders write 1 line per write", "M/s", v("tput100x1", "sockit", complete),
          v("tput100x1", "ncat", complete))
    t.add("deliveries/s, 1000 clients / 10 senders", "M/s", v("tput1000", "sockit", complete),
          v("tput1000", "ncat", complete))
    t.add("1000 clients connected+greeted (8 in flight)", "s", v("tput1000", "sockit", "connect_s"),
          v("tput1000", "ncat", "connect_s"), "< 1 s", lambda s: s < 1.0)
    t.add("1000 clients connected+greeted (64 in flight)", "s", v("burst1000", "sockit", "connect_s"), None,
          "< 1 s", lambda s: s < 1.0, ncat_note="not run (a)")
    per_client = lambda r: ((r["rss_idle_kib"] - r["rss_base_kib"]) / r["clients"]
                            if r.get("rss_idle_kib") is not None and r.get("settled") else None)
    t.add("server RSS per idle client, 10k clients", "KiB", v("idle10k", "sockit", per_client), None,
          "<= 8 KiB", lambda s: s <= 8.0, ncat_note="not run (b)")
    t.add("10k clients connected+greeted (64 in flight)", "s", v("idle10k", "sockit", "connect_s"), None,
          ncat_note="-")
    t.add("p50 latency @1000 lines/s, 100 clients", "ms", v("lat", "sockit", us_to_ms("lat_p50_us")),
          v("lat", "ncat", us_to_ms("lat_p50_us")))
    t.add("p99 latency @1000 lines/s, 100 clients", "ms", v("lat", "sockit", us_to_ms("lat_p99_us")),
          v("lat", "ncat", us_to_ms("lat_p99_us")), "< 1 ms", lambda s: s < 1.0)
    t.add("p99 latency @1000 lines/s, 10 clients", "ms", v("lat10", "sockit", us_to_ms("lat_p99_us")),
          v("lat10", "ncat", us_to_ms("lat_p99_us")))
    t.add("  same, 100 clients +10 stalled: p99", "ms", v("lat_stalled", "sockit", us_to_ms("lat_p99_us")),
          v("lat_stalled", "ncat", us_to_ms("lat_p99_us")))
    t.add("deliveries/s, 512 B lines, 100 clients", "M/s", v("big", "sockit", complete),
          v("big", "ncat", complete))

    def stalled_note(kind):
        rs = results.get(("big_stalled", kind), [])
        stuck = [r for r in rs if not r.get("complete")]
        if not stuck:
            return None
        return "%d/%d runs stuck (c)" % (len(stuck), len(rs))

    t.add("  same, +10 stalled clients", "M/s", v("big_stalled", "sockit", complete),
          v("big_stalled", "ncat", complete), ncat_note=stalled_note("ncat"))
    base = median(v("big", "sockit", complete))
    with_stalled = median(v("big_stalled", "sockit", complete))
    if base and with_stalled:
        t.add("  sockit throughput with stalled / without", "x", [with_stalled / base], None,
              "within 10%", lambda s: s >= 0.9, ncat_note="-")
    p99 = lambda n: median(v(n, "sockit", us_to_ms("lat_p99_us")))
    if p99("lat") and p99("lat_stalled"):
        t.add("  sockit p99 @1000/s with stalled / without", "x", [p99("lat_stalled") / p99("lat")], None,
              "within 10%", lambda s: s <= 1.1, ncat_note="-")
    if p99("big") and p99("big_stalled"):
        t.add("  sockit closed-loop p99 with stalled / without", "x", [p99("big_stalled") / p99("big")], None,
              "within 10%", lambda s: s <= 1.1, ncat_note="-")
    mib = lambda r: r["rss_peak_kib"] / 1024 if r.get("rss_peak_kib") is not None else None
    t.add("  server peak RSS with 10 stalled clients", "MiB", v("big_stalled", "sockit", mib),
          values(results, "big_stalled", "ncat", mib, ok_only=False), "< 64 MiB", lambda s: s < 64)
    t.add("server peak RSS, 1000 clients closed loop", "MiB", v("tput1000", "sockit", mib),
          v("tput1000", "ncat", mib))
    pressure = [r.get("cpu_pressure") for rs in results.values() for r in rs]
    pressure = median(pressure)
    print()
    print("chat benchmark: %d run(s) per scenario, medians; ratios are sockit/ncat; "
          "CPU pressure (PSI some avg10) median %s%%" % (runs, "-" if pressure is None else "%.0f" % pressure))
    t.print()
    print()
    print("(a) " + NOTES["backlog"])
    print("(b) " + NOTES["fdsetsize"])
    stuck = [r for r in results.get(("big_stalled", "ncat"), []) if not r.get("complete")]
    if stuck:
        print("(c) ncat writes to each client with blocking sends, so one client that stops reading "
              "stops the whole room: " + (stuck[0].get("error") or "lost %s" % stuck[0].get("lost")))
    kicked = median(values(results, "big_stalled", "sockit", "kicked_seen"))
    if kicked is not None:
        print("    sockit dropped %d of the 10 stalled clients as too slow (median per run)" % kicked)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and server (default 3)")
    ap.add_argument("--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--json", metavar="FILE", help="also write every run's summary to FILE")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"),
                    help="the sockit binary (default: $CARGO_TARGET_DIR or target/, release)")
    ap.add_argument("--chatload", default=os.path.join(TARGET, "release", "examples", "chatload"),
                    help="the load generator (cargo build --release --example chatload)")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error("unknown scenario(s): " + ", ".join(unknown))
    if a.build:
        subprocess.run(["cargo", "build", "--release", "--bin", "sockit", "--example", "chatload"],
                       cwd=ROOT, check=True)
    for path in (a.sockit, a.chatload):
        if not os.access(path, os.X_OK):
            sys.exit("missing %s: run `cargo build --release --bin sockit --example chatload` "
                     "(or pass --build)" % path)
    if not shutil.which("ncat"):
        sys.exit("ncat not found (Debian: apt-get install ncat)")
    # 10k clients: the generator needs more than the usual 1024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log("chat bench: runs=%d, scenarios=%s, load average %.1f, nofile %d"
        % (a.runs, ",".join(names), os.getloadavg()[0], hard))

    results = {}
    for run in range(a.runs):
        for name in names:
            kinds = SCENARIOS[name][0]
            # Alternate which server goes first, so drift in the machine's load
            # does not always favour the same one.
            for kind in (kinds if run % 2 == 0 else tuple(reversed(kinds))):
                r = run_one(kind, name, a)
                results.setdefault((name, kind), []).append(r)
                status = "ok" if r.get("complete") else ("INCOMPLETE" if r.get("ok") else "FAILED")
                log("run %d %-11s %-6s %-10s %s" % (run + 1, name, kind, status,
                                                   r.get("human") or r.get("error")))
    if a.json:
        with open(a.json, "w") as f:
            for (name, kind), rs in sorted(results.items()):
                for r in rs:
                    f.write(json.dumps(dict(r, scenario=name, server=kind)) + "\n")
    report(results, a.runs)


if __name__ == "__main__":
    main()
