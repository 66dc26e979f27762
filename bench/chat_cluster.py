#!/usr/bin/env python3
"""Chat benchmark, cluster: three `sockit chat serve --cluster` nodes on one
nats-server next to one node alone, the same clients, run after run.

    tput        1000 clients (spread over the three nodes), 10 senders, 500
                lines of 64 bytes each, closed loop: deliveries/s and p99
                latency, against one node with the same 1000 clients
    lat         100 clients, 10 senders at a fixed 1000 lines/s in: p99 of
                the deliveries that crossed nodes (target < 5 ms), next to
                one node's p99
    rooms30     300 clients in 30 rooms, 10 per node (each room's readers on
                one node, its sender on the next), 30 senders at 1000
                lines/s in: bytes each node received from NATS against all
                the room traffic published (target: about a third)
    storm       3000 clients connecting to the three nodes at once, each
                taking a unique nick (/nick, cluster-wide through the
                JetStream bucket) and waiting for it: time until all hold
                their nick (target < 5 s), against one node

Server CPU per delivery is utime+stime from /proc/PID/stat over the run, of
the sockit nodes together and of nats-server, next to the single node's. The
NATS byte counts come from nats-server's own monitoring (/connz): for each
node's connection, bytes the server sent it (out) and bytes it published (in).
The load is the `chatload` example (examples/chatload.rs: --also for more
addresses, --rooms, --sender-offset, --nick-prefix).

    cargo build --release --bin sockit --example chatload
    python3 bench/chat_cluster.py [--runs 3] [--only tput,lat,rooms30,storm]
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
NODES = 3
TICK = os.sysconf("SC_CLK_TCK")

# name -> (chatload arguments, also run against a single node)
SCENARIOS = {
    "tput": (["--clients", "1000", "--senders", "10", "--messages", "500", "--bytes", "64"], True),
    "lat": (["--clients", "100", "--senders", "10", "--messages", "300", "--rate", "1000"], True),
    "rooms30": (["--clients", "300", "--senders", "30", "--messages", "100", "--rate", "1000",
                 "--rooms", "30", "--sender-offset", "1"], False),
    "storm": (["--clients", "3000", "--senders", "0", "--messages", "0", "--connect-concurrency", "256",
               "--nick-prefix", "storm", "--settle-timeout", "120"], True),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def wait_listening(port, proc, what, limit=10):
    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("%s did not start" % what)
        time.sleep(0.02)


def http_get(port, path):
    """The body of a GET on 127.0.0.1:port (bench/http.py shadows the http package here)."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, HOST)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


class Proc:
    def __init__(self, cmd, what):
        self.what = what
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log)

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_log(self, needle, limit=15):
        deadline = time.monotonic() + limit
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s: no %r: %s" % (self.what, needle, self.text()[-400:]))
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Setup:
    """nats-server and three nodes (cluster), or one node alone (single)."""

    def __init__(self, kind, sockit):
        self.kind, self.procs, self.nodes, self.ports = kind, [], [], []
        self.nats = None
        self.tmp = tempfile.TemporaryDirectory()
        try:
            self.start(sockit)
        except Exception:
            self.stop()
            raise

    def start(self, sockit):
        base = [sockit, "chat", "serve", "--no-console", "--rate", "0", "--max-clients", "5000"]
        if self.kind == "single":
            port = free_port()
            db = os.path.join(self.tmp.name, "single.db")
            node = Proc(base + ["%s:%d" % (HOST, port), "--history-db", db], "sockit")
            self.procs.append(node)
            wait_listening(port, node.proc, "sockit")
            self.nodes, self.ports = [node], [port]
            return
        self.nats_port, self.mon_port = free_port(), free_port()
        self.nats = Proc(["nats-server", "-js", "-a", HOST, "-p", str(self.nats_port),
                          "-m", str(self.mon_port), "-sd", self.tmp.name], "nats-server")
        self.procs.append(self.nats)
        wait_listening(self.nats_port, self.nats.proc, "nats-server")
        url = "nats://%s:%d" % (HOST, self.nats_port)
        for i in range(NODES):
            port = free_port()
            name = "n%d" % i
            # Each node keeps its own copy of its rooms' history.
            db = os.path.join(self.tmp.name, name + ".db")
            node = Proc(base + ["%s:%d" % (HOST, port), "--cluster", url, "--node", name,
                                "--history-db", db], name)
            self.procs.append(node)
            node.wait_log("chat listening on ")
            wait_listening(port, node.proc, name)
            self.nodes.append(node)
            self.ports.append(port)

    def cpu(self):
        return {p.what: cpu_ticks(p.proc.pid) for p in self.procs}

    def connz(self):
        """Per node name: (bytes NATS sent it, bytes it sent NATS)."""
        if not self.nats:
            return {}
        data = json.loads(http_get(self.mon_port, "/connz?limit=1000"))
        out = {}
        for c in data.get("connections", []):
            name = c.get("name", "")
            if name.startswith("sockit chat "):
                out[name[len("sockit chat "):]] = (c.get("out_bytes", 0), c.get("in_bytes", 0))
        return out

    def alive(self):
        return all(p.proc.poll() is None for p in self.procs)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.tmp.cleanup()


def run_one(kind, name, a):
    args, _ = SCENARIOS[name]
    setup = Setup(kind, a.sockit)
    try:
        addrs = ["%s:%d" % (HOST, p) for p in setup.ports]
        cmd = [a.chatload, addrs[0], "--label", name, "--server-pid", str(setup.nodes[0].proc.pid)]
        for extra in addrs[1:]:
            cmd += ["--also", extra]
        cmd += args
        cpu0, nats0 = setup.cpu(), setup.connz()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "chatload did not finish in 300 s"}
        cpu1, nats1 = setup.cpu(), setup.connz()
        alive = setup.alive()
    finally:
        setup.stop()
    lines = p.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])}
    res["human"] = lines[0] if len(lines) > 1 else ""
    if not alive:
        res["ok"], res["error"] = False, "a server died during the run"
    ticks = lambda who: (cpu1.get(who) - cpu0.get(who)) if cpu0.get(who) is not None and cpu1.get(who) is not None else None
    sockit_ticks = [ticks(n.what) for n in setup.nodes]
    res["sockit_cpu_s"] = sum(sockit_ticks) / TICK if None not in sockit_ticks else None
    res["nats_cpu_s"] = ticks("nats-server") / TICK if setup.nats else None
    res["nats"] = {n: (nats1[n][0] - nats0.get(n, (0, 0))[0], nats1[n][1] - nats0.get(n, (0, 0))[1])
                   for n in nats1}
    return res


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "M/s":
        return "%.3f M/s" % (v / 1e6)
    if unit == "s":
        return "%.3f s" % v
    if unit == "ms":
        return "%.2f ms" % v
    if unit == "us":
        return "%.2f us" % v
    if unit == "x":
        return "%.2fx" % v
    if unit == "KiB":
        return "%.1f KiB" % v
    return str(v)


def report(results, runs):
    get = lambda name, kind, f: [f(r) for r in results.get((name, kind), []) if r.get("ok")]
    rows = [("metric (median over %d runs)" % runs, "3 nodes + NATS", "1 node", "3/1", "target")]

    def row(label, unit, c, s=None, target="", check=None):
        mc, ms_ = median(c), median(s or [])
        ratio = mc / ms_ if mc is not None and ms_ else None
        verdict = ("%s: %s" % (target, "met" if check(mc) else "MISSED")) if check and mc is not None else target
        rows.append((label, fmt(mc, unit), fmt(ms_, unit) if s is not None else "-",
                     fmt(ratio, "x") if ratio is not None else "-", verdict))

    dps = lambda r: r["deliveries_per_s"] if r.get("complete") else None
    p99 = lambda k: (lambda r: r[k] / 1e3 if r.get(k) is not None else None)
    per_delivery = lambda k: (lambda r: r[k] * 1e6 / r["received"] if r.get(k) is not None and r.get("received") else None)
    row("deliveries/s, 1000 clients / 10 senders", "M/s", get("tput", "cluster", dps), get("tput", "single", dps))
    row("  p99 latency", "ms", get("tput", "cluster", p99("lat_p99_us")), get("tput", "single", p99("lat_p99_us")))
    row("  sockit CPU per delivery (all nodes)", "us", get("tput", "cluster", per_delivery("sockit_cpu_s")),
        get("tput", "single", per_delivery("sockit_cpu_s")))
    row("  nats-server CPU per delivery", "us", get("tput", "cluster", per_delivery("nats_cpu_s")))
    row("p99 @1000 lines/s, 100 clients: cross-node", "ms", get("lat", "cluster", p99("lat_cross_p99_us")),
        get("lat", "single", p99("lat_p99_us")), "< 5 ms", lambda v: v < 5.0)
    row("  all deliveries p99", "ms", get("lat", "cluster", p99("lat_p99_us")),
        get("lat", "single", p99("lat_p99_us")))

    def shares(r):
        nats = r.get("nats") or {}
        published = sum(v[1] for v in nats.values())
        if not published:
            return []
        return [v[0] / published for v in nats.values()]
    share = [s for r in results.get(("rooms30", "cluster"), []) if r.get("ok") for s in shares(r)]
    row("30 rooms: bytes from NATS per node / all published", "x",
        [median(share)] if share else [], None, "about 1/3", lambda v: 0.2 <= v <= 0.45)
    if share:
        row("  per node, lowest .. highest", "x", [min(share)], [max(share)])
    row("30 rooms: deliveries complete (runs)", "", [sum(1 for r in results.get(("rooms30", "cluster"), [])
                                                         if r.get("complete"))])
    row("join storm: 3000 clients with unique nicks", "s", get("storm", "cluster", lambda r: r["connect_s"]),
        get("storm", "single", lambda r: r["connect_s"]), "< 5 s", lambda v: v < 5.0)
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(width[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in width))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated: " + ", ".join(SCENARIOS))
    ap.add_argument("--json", metavar="FILE", help="also write every run's summary to FILE")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"))
    ap.add_argument("--chatload", default=os.path.join(TARGET, "release", "examples", "chatload"))
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error("unknown scenario(s): " + ", ".join(unknown))
    for path in (a.sockit, a.chatload):
        if not os.access(path, os.X_OK):
            sys.exit("missing %s: run `cargo build --release --bin sockit --example chatload`" % path)
    if not shutil.which("nats-server"):
        sys.exit("nats-server not found (Debian: apt-get install nats-server)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log("cluster bench: runs=%d, scenarios=%s, load average %.1f" % (a.runs, ",".join(names), os.getloadavg()[0]))
    results = {}
    for run in range(a.runs):
        for name in names:
            kinds = ("cluster", "single") if SCENARIOS[name][1] else ("cluster",)
            for kind in (kinds if run % 2 == 0 else tuple(reversed(kinds))):
                try:
                    r = run_one(kind, name, a)
                except RuntimeError as e:
                    r = {"ok": False, "error": str(e)}
                results.setdefault((name, kind), []).append(r)
                status = "ok" if r.get("complete") else ("INCOMPLETE" if r.get("ok") else "FAILED")
                extra = ""
                if r.get("nats") and name == "rooms30":
                    extra = " nats bytes (out,in) per node %s" % r["nats"]
                log("run %d %-8s %-8s %-10s %s%s" % (run + 1, name, kind, status,
                                                   r.get("human") or r.get("error"), extra))
    if a.json:
        with open(a.json, "w") as f:
            for (name, kind), rs in sorted(results.items()):
                for r in rs:
                    f.write(json.dumps(dict(r, scenario=name, server=kind)) + "\n")
    report(results, a.runs)


if __name__ == "__main__":
    main()
