#!/usr/bin/env python3
"""Chat history benchmark: sockit chat serve with history next to --no-history, same run.

Three measurements, each repeated (--runs) and reported as medians:

  fanout   chatload (examples/chatload.rs) drives C clients, S senders of M lines
           against a server with history (a fresh database) and one without.
           Reported: stored messages/s (rows in the database / send phase), the
           fan-out rate (deliveries/s) of both and their ratio (target: history
           within 20 % of --no-history), the server's CPU time per 1000 messages
           (utime+stime from /proc/PID/stat), and lost/dropped counts.
  join     a database of --rows events (the lobby's, written directly in the
           server's schema), then J clients connect one after another; each join
           is timed from connect() to the last of its 20 replayed lines.
           Reported: p50/p99 (target p99 < 5 ms), next to a --no-history join
           (connect to welcome).
  resume   a member with cursor marks drops, 1000 messages are said, it
           reconnects and sends /resume; timed from the /resume line to the
           cursor that ends the answer (target < 50 ms).

    bench/run history                 (builds the release binary first)
    python3 bench/chat_history.py --runs 3 --rows 1000000
"""

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Server:
    def __init__(self, sockit, db, extra=()):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        hist = ["--no-history"] if db is None else ["--history-db", db]
        cmd = [sockit, "chat", "serve", "--no-console", "--rate", "0", "--max-clients", "20000"] + hist \
            + list(extra) + ["%s:%d" % (HOST, self.port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                s = socket.create_connection((HOST, self.port), timeout=1)
                s.settimeout(5)
                if s.recv(200).startswith(b"* welcome"):
                    s.close()
                    break
                s.close()
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + self.tail())
            time.sleep(0.05)

    def tail(self):
        self.log.seek(0)
        return self.log.read()[-600:].decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *e):
        self.stop()


class Line:
    """A line client (blocking socket, bounded reads)."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=30)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise RuntimeError("closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return l.decode(errors="replace")

    def until(self, pred):
        while True:
            l = self.line()
            if pred(l):
                return l

    def send(self, text):
        self.s.sendall(text.encode())

    def close(self):
        self.s.close()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


# ---- fanout ---------------------------------------------------------------

def fanout_run(a, with_history):
    d = tempfile.mkdtemp(prefix="sockit-hist-")
    db = os.path.join(d, "chat.db") if with_history else None
    with Server(a.sockit, db, ["--history-max-per-room", "0"]) as srv:
        before = cpu_ticks(srv.proc.pid)
        cmd = [a.chatload, "%s:%d" % (HOST, srv.port), "--clients", str(a.clients), "--senders",
               str(a.senders), "--messages", str(a.messages), "--bytes", "64"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        res = json.loads(p.stdout.strip().splitlines()[-1])
        sent = a.senders * a.messages
        cpu_s = (cpu_ticks(srv.proc.pid) - before) / os.sysconf("SC_CLK_TCK")
        stored = None
        if db:
            # What the writer had committed when the send phase ended (plus
            # the tail it commits now): wait for it, bounded.
            deadline = time.monotonic() + 30
            while True:
                c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
                stored = c.execute("SELECT count(*) FROM events WHERE text LIKE 'CHATLOAD%'").fetchone()[0]
                c.close()
                if stored >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        paused = "history paused" in srv.tail()
    return {
        "deliveries_per_s": res["deliveries_per_s"], "elapsed_s": res["elapsed_s"], "lost": res["lost"],
        "sent": sent, "stored": stored, "cpu_ms_per_1k": 1e6 * cpu_s / sent,
        "paused": paused, "ok": res.get("ok", p.returncode == 0),
    }


# ---- join with replay ------------------------------------------------------

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rooms(name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE events(room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    kind INTEGER NOT NULL, nick TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (room, seq)) WITHOUT ROWID;
CREATE TABLE private(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, nick TEXT NOT NULL,
    target TEXT NOT NULL, text TEXT NOT NULL);
PRAGMA user_version = 1;
"""


def prefill(path, rows):
    """`rows` events: most in the lobby, the rest over 100 other rooms."""
    c = sqlite3.connect(path)
    c.executescript(SCHEMA)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("INSERT INTO meta VALUES ('epoch', '0123456789abcdef'), ('open', '0')")
    now = int(time.time() * 1000)
    lobby = rows // 2
    per = (rows - lobby) // 100
    c.executemany("INSERT INTO events VALUES ('lobby', ?, ?, 1, 'filler', ?)",
                  ((i, now, "history line %d, some words to make it a chat line" % i) for i in range(1, lobby + 1)))
    for r in range(100):
        c.executemany("INSERT INTO events VALUES (?, ?, ?, 1, 'filler', 'a line in another room')",
                      (("room%d" % r, i, now) for i in range(1, per + 1)))
        c.execute("INSERT INTO rooms VALUES (?, ?)", ("room%d" % r, per))
    c.execute("INSERT INTO rooms VALUES ('lobby', ?)", (lobby,))
    c.commit()
    n = c.execute("SELECT count(*) FROM events").fetchone()[0]
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return n


def join_times(port, joins, replay):
    times = []
    for _ in range(joins):
        t0 = time.perf_counter()
        c = Line(port)
        c.until(lambda l: l.startswith("* welcome"))
        for _ in range(replay):
            l = c.line()
            assert l.startswith("="), l
        times.append((time.perf_counter() - t0) * 1000)
        c.close()
    return times


# ---- resume ----------------------------------------------------------------

def resume_times(a, port, missed, rounds):
    times = []
    talker = Line(port)
    talker.until(lambda l: l.startswith("* welcome"))
    talker.send("/nick talker\n")
    for r in range(rounds):
        m = Line(port)
        m.until(lambda l: l.startswith("* welcome"))
        m.send("/cursors\n")
        cur = m.until(lambda l: l.startswith("@") and " epoch=" in l)
        mark, epoch = cur.split(" epoch=")
        last = int(mark.rsplit("#", 1)[1])
        m.close()
        talker.send("".join("missed %d %d\n" % (r, i) for i in range(missed)))
        # The talker sees nothing of its own: a watcher waits for the last line.
        w = Line(port)
        w.until(lambda l: ("missed %d %d" % (r, missed - 1)) in l)
        w.close()
        m = Line(port)
        m.until(lambda l: l.startswith("* welcome"))
        m.send("/cursors\n")
        m.until(lambda l: l.startswith("@") and " epoch=" in l)
        t0 = time.perf_counter()
        m.send("/resume lobby %s %d\n" % (epoch, last))
        got = 0
        while True:
            l = m.line()
            if l.startswith("="):
                got += 1
            elif l.startswith("@") and " epoch=" in l:
                break
            elif "gap" in l:
                raise RuntimeError(l)
        times.append((time.perf_counter() - t0) * 1000)
        assert got >= missed, (got, missed)
        m.close()
    talker.close()
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--messages", type=int, default=20000, help="lines per sender (fanout)")
    ap.add_argument("--rows", type=int, default=1000000, help="events in the join database")
    ap.add_argument("--joins", type=int, default=500)
    ap.add_argument("--missed", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--only", default="fanout,join,resume")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"))
    ap.add_argument("--chatload", default=os.path.join(TARGET, "release", "examples", "chatload"))
    a = ap.parse_args()
    only = set(a.only.split(","))
    rows = []

    if "fanout" in only:
        h, n = [], []
        for i in range(a.runs):
            n.append(fanout_run(a, False))
            h.append(fanout_run(a, True))
            log("fanout run %d: history %s / no-history %s" % (i + 1, h[-1], n[-1]))
        stored_rate = median([r["stored"] / r["elapsed_s"] for r in h])
        hd, nd = median([r["deliveries_per_s"] for r in h]), median([r["deliveries_per_s"] for r in n])
        rows.append(("fanout %d clients, %d senders x %d lines" % (a.clients, a.senders, a.messages), "", ""))
        rows.append(("  stored messages/s (history)", "%.0f" % stored_rate, "target >= 50000"))
        rows.append(("  stored / sent", "%s" % ", ".join("%d/%d" % (r["stored"], r["sent"]) for r in h), ""))
        rows.append(("  deliveries/s history | no-history", "%.0f | %.0f" % (hd, nd),
                     "ratio %.2f (target >= 0.80)" % (hd / nd)))
        rows.append(("  server CPU ms per 1000 msgs history | no-history",
                     "%.1f | %.1f" % (median([r["cpu_ms_per_1k"] for r in h]),
                                      median([r["cpu_ms_per_1k"] for r in n])), ""))
        rows.append(("  lost lines / history paused", "%s / %s" % (
            sum(r["lost"] for r in h + n), any(r["paused"] for r in h)), ""))

    if "join" in only:
        d = tempfile.mkdtemp(prefix="sockit-hist-")
        db = os.path.join(d, "chat.db")
        t0 = time.monotonic()
        n = prefill(db, a.rows)
        log("prefilled %d rows in %.1f s" % (n, time.monotonic() - t0))
        hp50, hp99, np50, np99 = [], [], [], []
        for i in range(a.runs):
            with Server(a.sockit, db, ["--history-max-per-room", "0", "--history-max-age", "0"]) as srv:
                t = join_times(srv.port, a.joins, 20)
                hp50.append(pct(t, 0.5))
                hp99.append(pct(t, 0.99))
            with Server(a.sockit, None) as srv:
                t = join_times(srv.port, a.joins, 0)
                np50.append(pct(t, 0.5))
                np99.append(pct(t, 0.99))
            log("join run %d: history p50 %.2f p99 %.2f ms, no-history p50 %.2f p99 %.2f ms"
                % (i + 1, hp50[-1], hp99[-1], np50[-1], np99[-1]))
        rows.append(("join with replay of 20, %d-row database (%d joins)" % (n, a.joins), "", ""))
        rows.append(("  p50 | p99 ms, history", "%.2f | %.2f" % (median(hp50), median(hp99)), "target p99 < 5"))
        rows.append(("  p50 | p99 ms, --no-history (no replay)", "%.2f | %.2f" % (median(np50), median(np99)),
                     "ratio p99 %.2f" % (median(hp99) / median(np99))))

    if "resume" in only:
        meds, p99s = [], []
        for i in range(a.runs):
            d = tempfile.mkdtemp(prefix="sockit-hist-")
            with Server(a.sockit, os.path.join(d, "chat.db")) as srv:
                t = resume_times(a, srv.port, a.missed, a.rounds)
            meds.append(median(t))
            p99s.append(max(t))
            log("resume run %d: median %.2f ms, max %.2f ms" % (i + 1, meds[-1], p99s[-1]))
        rows.append(("resume after %d missed messages (%d rounds)" % (a.missed, a.rounds), "", ""))
        rows.append(("  median | max ms", "%.2f | %.2f" % (median(meds), median(p99s)), "target < 50"))

    print()
    print("sockit chat history (medians of %d runs)" % a.runs)
    for name, val, note in rows:
        print("%-58s %-22s %s" % (name, val, note))


if __name__ == "__main__":
    main()
