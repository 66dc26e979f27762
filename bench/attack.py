#!/usr/bin/env python3
"""Attack suite: sockit's memory and descriptor limits under the attacks of the
hardening issue (#9), at full size, with the server's RSS next to its bound.

Every attack runs against a fresh process on 127.0.0.1 (an ephemeral port),
bounded in time. The harness samples the target's VmRSS and its open
descriptors (/proc/PID/status, /proc/PID/fd) every 0.5 s and reads VmHWM (the
kernel's exact peak) before stopping it; an `http` client's peak comes from
wait4()'s ru_maxrss. The table shows the peak RSS, the bound the attack must
stay under, and whether what should happen did (slow clients dropped, exit 61,
a legitimate client answered, ...).

    chat-pairs        chat serve, default flags: pairs of clients, each pair alone in
                      its room. The first of a pair (SO_RCVBUF 2 KiB) never reads and
                      sends 4 lines of 4000 bytes every 0.2 s (inside --rate 20/s);
                      its partner sends one short line at the same moment and reads.
                      First, 3 helpers per pair fill the slow member's socket with
                      private messages (inside --rate) until the kernel's send queue
                      towards it stops growing (~2 MiB here), then leave.
    chat-pairs-rate0  the same with --rate 0, 20 pairs and 8 lines per 10 ms
    greet, echo       listen --greet / --echo -k: clients that write 256 KiB blocks
                      of newlines as fast as the server reads them and never read
    greet-many        the same as greet with 900 clients
    greet-nonl        greet with 256 KiB blocks without a newline
    broker            listen --broker -k: 200 slow clients (SO_RCVBUF 2 KiB) that never
                      read, and 8 senders of 10-byte lines (TCP_NODELAY, one write per
                      line, evenly spaced so that the server reads one line at a time)
    http-ce           sockit http --compressed; the response says
                      Content-Encoding: gzip,gzip,... (12,000 codings, 60 KB header)
    http-te           Transfer-Encoding: gzip,...,chunked (12,000 codings), no --compressed
    http-nested       --compressed; a body of 12,500 really nested gzip layers
    tls               chat serve --tls-self-signed --max-clients 10: 5000 connections
                      that send 8 bytes of a ClientHello and stall; a legitimate TLS
                      client tries every second meanwhile (2 s each)
    tls-lowfd         the same with the server's RLIMIT_NOFILE at 1024
    who               chat serve: 3000 idle members in the lobby, 100 clients sending
                      /who at 20/s each; a probe's line latency with and without them

Bounds use --max-queue (the servers' default, 1 MiB) and a fixed overhead
(--overhead-mib, 64): chat and broker: clients x max-queue + overhead; greet and
echo: clients x (max-queue + 256 KiB) + overhead; http: the overhead alone; tls:
10 x max-queue + overhead, and at most 10 + 32 descriptors.

An attack stops early once the target passes --rss-cap-mib (default 4096), so a
broken build cannot take the machine's memory; the row then says so.

    python3 bench/attack.py                       every attack at full size (~5 min)
    python3 bench/attack.py --quick               scaled down (~1.5 min): checks the harness;
                                                  some attacks are then too short to end
                                                  as they should (broker drops need ~25 s)
    python3 bench/attack.py chat tls              only these (a name or its prefix)
    python3 bench/attack.py --set chat-pairs.pairs=50 --set chat-pairs.seconds=20 chat-pairs
    python3 bench/attack.py --list                attacks and their parameters

Standard library only; Linux only (/proc, wait4). Loopback only. Exit status 1
when an attack went over its bound or what should happen did not.
"""

import os
import sys

# bench/http.py sits next to this file and would shadow the standard library's
# http package: look for modules elsewhere first.
sys.path = [d for d in sys.path if os.path.abspath(d or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import collections  # noqa: E402
import errno  # noqa: E402
import http.server  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

KIB = 1 << 10
MIB = 1 << 20
HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")

# The first bytes of a TLS ClientHello: a handshake record header announcing
# 512 bytes, the handshake type and the start of its length. Never finished.
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01"

now = time.monotonic


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def mib(kib):
    return "-" if kib is None else "%.1f MiB" % (kib / 1024)


# --------------------------------------------------------------------------
# Attacks and their sizes: full by default, `quick` with --quick.

ATTACKS = collections.OrderedDict()


def attack(name, full, quick):
    def reg(fn):
        ATTACKS[name] = (fn, full, quick)
        return fn

    return reg


# --------------------------------------------------------------------------
# Processes: everything started is registered and killed on the way out.

LIVE = {}


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    LIVE[p.pid] = p
    return p


def stop_process(p, grace=3.0):
    """SIGTERM, then SIGKILL after `grace` seconds; reaps it."""
    if p.returncode is None and p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass
    LIVE.pop(p.pid, None)


def kill_all():
    for p in list(LIVE.values()):
        if p.returncode is None and p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        LIVE.pop(p.pid, None)


def proc_status(pid):
    """(VmRSS, VmHWM) in KiB, or None once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    got = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line[:5]] = int(line.split()[1])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


def count_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """Samples a process's VmRSS and descriptor count every `every` seconds,
    keeps the peaks, logs progress now and then, and sets `over` once RSS
    passes `cap_kib`."""

    def __init__(self, pid, cap_kib, label, every=0.5):
        super().__init__(daemon=True)
        self.pid, self.cap_kib, self.label, self.every = pid, cap_kib, label, every
        self.peak_rss = 0
        self.peak_fds = 0
        self.rss = None
        self.fds = None
        self.over = threading.Event()
        self.over_at = None
        self.done = threading.Event()
        self.t0 = now()
        self.start()

    def sample(self):
        st = proc_status(self.pid)
        fds = count_fds(self.pid)
        if st is None:
            return None
        self.rss = st[0]
        self.peak_rss = max(self.peak_rss, st[0], st[1])
        if fds is not None:
            self.fds = fds
            self.peak_fds = max(self.peak_fds, fds)
        if self.rss > self.cap_kib and not self.over.is_set():
            self.over_at = now() - self.t0
            self.over.set()
        return st

    def run(self):
        next_log = self.t0 + 5
        while not self.done.wait(self.every):
            if self.sample() is None:
                return
            if now() >= next_log:
                next_log += 5
                log("  [%s] %3.0f s: RSS %s, %s fds" % (self.label, now() - self.t0, mib(self.rss), self.fds))

    def finish(self):
        """Stops sampling; the last sample includes VmHWM, the exact peak."""
        self.done.set()
        self.join(2)
        self.sample()


# --------------------------------------------------------------------------
# Servers: a fresh port, ready once /proc/net/tcp shows it listening on a
# socket the server owns (no probe connection, which would count as a client).


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listen_inode(port):
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[1] == want and parts[3] == "0A":
                    return parts[9]
    except OSError:
        pass
    return None


def owns_socket(pid, inode):
    target = "socket:[%s]" % inode
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


class Server:
    """One sockit server on a fresh port, sampled from the start; stopped on
    exit from the `with`."""

    def __init__(self, ctx, label, args_for_port, nofile=None):
        self.err = tempfile.NamedTemporaryFile(prefix="sockit-attack-", suffix=".err")
        preexec = None
        if nofile:
            def preexec():
                # Both limits: sockit raises its soft limit to the hard one.
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), min(nofile, hard)))
        for attempt in range(3):
            self.port = free_port()
            self.proc = spawn([ctx.sockit] + args_for_port(self.port), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=self.err, preexec_fn=preexec)
            deadline = now() + 10
            while now() < deadline and self.proc.poll() is None:
                inode = listen_inode(self.port)
                if inode and owns_socket(self.proc.pid, inode):
                    break
                time.sleep(0.02)
            else:
                stop_process(self.proc)
                if attempt == 2:
                    raise RuntimeError("server did not start: %s" % self.tail())
                continue
            break
        self.base_rss = (proc_status(self.proc.pid) or (0, 0))[0]
        self.sampler = Sampler(self.proc.pid, ctx.cap_kib, label)

    def stderr_text(self):
        with open(self.err.name, "rb") as f:
            return f.read().decode(errors="replace")

    def tail(self):
        return " | ".join(self.stderr_text().strip().splitlines()[-3:])

    def stop(self):
        self.sampler.finish()
        stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.returncode is None:
            self.stop()
        self.err.close()


# --------------------------------------------------------------------------
# Clients: non-blocking sockets driven by one selector loop.


def errname(e):
    return errno.errorcode.get(e.errno, str(e)) if getattr(e, "errno", None) else str(e)


class Client:
    """One TCP client. `reads=False` never reads (a stalled reader). `pump`
    returns the next block to send whenever the socket is writable and nothing
    is queued; `send` queues at most `max_out` bytes and refuses more."""

    def __init__(self, loop, *, reads=True, on_line=None, on_up=None, rcvbuf=None, nodelay=False,
                 pump=None, max_out=256 * KIB, tag=None):
        self.loop, self.reads, self.on_line, self.on_up, self.pump = loop, reads, on_line, on_up, pump
        self.max_out, self.tag = max_out, tag
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.state = "new"
        self.closed = None
        self.out = collections.deque()
        self.off = 0
        self.queued = 0
        self.buf = bytearray()
        self.rx = self.tx = self.skipped = 0
        self.mask = 0

    def connect(self, port):
        err = self.sock.connect_ex((HOST, port))
        if err not in (0, errno.EINPROGRESS):
            self.close("connect: " + errno.errorcode.get(err, str(err)))
            return
        self.state = "connecting"
        self.loop.connecting.add(self)
        self.update()

    def send(self, data):
        if self.closed:
            return False
        if self.queued > self.max_out:
            self.skipped += 1
            return False
        self.out.append(data)
        self.queued += len(data)
        if self.state == "up":
            self.flush()
            self.update()
        return True

    def event(self, ev):
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.close("connect: " + errno.errorcode.get(err, str(err)))
                return
            if not ev & selectors.EVENT_WRITE:
                return
            self.state = "up"
            self.loop.connecting.discard(self)
            if self.on_up:
                self.on_up(self)
            ev |= selectors.EVENT_WRITE
        if self.closed:
            return
        if ev & selectors.EVENT_READ and self.reads:
            self.read()
        if not self.closed and ev & selectors.EVENT_WRITE:
            self.flush()
        self.update()

    def read(self):
        try:
            data = self.sock.recv(256 * KIB)
        except BlockingIOError:
            return
        except OSError as e:
            self.close("recv: " + errname(e))
            return
        if not data:
            self.close("eof")
            return
        self.rx += len(data)
        if self.on_line is None:
            return
        self.buf += data
        if b"\n" not in data:
            if len(self.buf) > MIB:
                self.buf.clear()
            return
        parts = self.buf.split(b"\n")
        self.buf = bytearray(parts.pop())
        for line in parts:
            self.on_line(self, bytes(line))
            if self.closed:
                return

    def flush(self):
        while True:
            if not self.out:
                if self.pump is None:
                    return
                block = self.pump()
                self.out.append(block)
                self.queued += len(block)
            chunk = self.out[0]
            try:
                n = self.sock.send(memoryview(chunk)[self.off:])
            except BlockingIOError:
                return
            except OSError as e:
                self.close("send: " + errname(e))
                return
            self.tx += n
            self.off += n
            self.queued -= n
            if self.off == len(chunk):
                self.out.popleft()
                self.off = 0

    def update(self):
        want = 0
        if self.closed is None:
            if self.state == "connecting":
                want = selectors.EVENT_WRITE
            elif self.state == "up":
                want = (selectors.EVENT_READ if self.reads else 0) | (
                    selectors.EVENT_WRITE if self.out or self.pump else 0)
        if want == self.mask:
            return
        if self.mask == 0:
            self.loop.sel.register(self.sock, want, self)
        elif want == 0:
            self.loop.sel.unregister(self.sock)
        else:
            self.loop.sel.modify(self.sock, want, self)
        self.mask = want

    def close(self, reason):
        if self.closed:
            return
        self.closed = reason
        if self.mask:
            self.loop.sel.unregister(self.sock)
            self.mask = 0
        self.loop.connecting.discard(self)
        self.sock.close()


class Loop:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.connecting = set()
        self.clients = []

    def poll(self, timeout):
        for key, ev in self.sel.select(timeout):
            key.data.event(ev)

    def run(self, seconds, tick=None, every=0.0, stop=None):
        """Polls for `seconds`, calling `tick` every `every` seconds (no
        catch-up bursts when late), until `stop()` is true. Returns the time run."""
        t0 = now()
        end = t0 + seconds
        next_tick = t0
        next_stop = t0
        while True:
            t = now()
            if t >= end:
                break
            if stop is not None and t >= next_stop:
                next_stop = t + 0.1
                if stop():
                    break
            if tick is not None and t >= next_tick:
                tick()
                next_tick = max(next_tick + every, now()) if every else now()
            wake = min(end, next_tick if tick is not None else end, next_stop if stop else end)
            self.poll(max(0.0, min(wake - now(), 0.1)))
        return now() - t0

    def open(self, clients, port, inflight=128, seconds=30.0, stop=None):
        """Connects `clients` with at most `inflight` handshakes at once; gives
        up after `seconds`. Returns how many connected."""
        self.clients.extend(clients)
        todo = collections.deque(clients)
        deadline = now() + seconds
        while (todo or self.connecting) and now() < deadline and not (stop and stop()):
            while todo and len(self.connecting) < inflight:
                todo.popleft().connect(port)
            self.poll(0.02)
        return sum(1 for c in clients if c.state == "up")

    def close_all(self):
        for c in self.clients:
            c.close("done")
        self.clients = []
        self.sel.close()


# --------------------------------------------------------------------------
# Results.


class Row:
    def __init__(self, name, desc):
        self.name, self.desc = name, desc
        self.rss = None  # peak, KiB
        self.bound = None  # KiB
        self.bound_text = ""
        self.fds = ""
        self.expect = ""  # what should happen
        self.seen = ""  # what did
        self.expect_ok = None
        self.notes = []
        self.error = None

    @property
    def verdict(self):
        if self.rss is None or self.bound is None:
            return "-"
        return "within" if self.rss <= self.bound else "OVER"

    @property
    def ok(self):
        return self.error is None and self.verdict != "OVER" and self.expect_ok is not False


def server_row(row, srv, bound_kib, bound_text):
    s = srv.sampler
    row.rss = s.peak_rss
    row.bound = bound_kib
    row.bound_text = "%s (%s)" % (mib(bound_kib), bound_text)
    row.fds = "%s/%s" % (s.peak_fds, s.fds)
    if s.over.is_set():
        row.notes.append("stopped at the RSS cap (%s) after %.1f s" % (mib(s.cap_kib), s.over_at))


def yes(flag):
    return "yes" if flag else "no"


# --------------------------------------------------------------------------
# 1. chat serve: a slow member's queue charged less than it keeps alive.


def tx_queues(port):
    """{peer port: bytes in the kernel's send queue} for the established
    sockets on local `port` (/proc/net/tcp)."""
    want = ":%04X" % port
    out = {}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[1].endswith(want) and parts[3] == "01":
                    out[int(parts[2].split(":")[1], 16)] = int(parts[4].split(":")[0], 16)
    except OSError:
        pass
    return out


def fill_sockets(loop, port, nicks, peer_ports, per_target, seconds):
    """Fills the kernel's send buffer of the server's socket to each nick (a
    member that never reads) with private messages of 4000 bytes from
    `per_target` helpers each, kept under --rate 20/s burst 40; a target is
    full once its send queue stops growing while more is sent to it, and then
    gets 96 KB more. The helpers then leave. Returns (full, send queue sizes)."""
    n = len(nicks)
    msgs = [b"/msg %s %s\n" % (nick, b"y" * 4000) for nick in nicks]
    helpers = [Client(loop, max_out=64 * KIB) for _ in range(n * per_target)]
    loop.open(helpers, port)
    loop.run(0.3)
    tokens = [39.0] * len(helpers)
    sent = [0] * n
    last = [-1] * n
    need = set(range(n))
    full = set()
    topup = {}  # target -> messages still to send once its socket is full
    queues = {}
    plateau = None  # the largest send queue of a target found full
    t_last = now()
    deadline = now() + seconds
    next_check = now() + 0.25
    while need and now() < deadline:
        t = now()
        dt, t_last = t - t_last, t
        for j, h in enumerate(helpers):
            i = j % n
            if i not in need:
                continue
            tokens[j] = min(39.0, tokens[j] + dt * 19)
            while tokens[j] >= 1 and h.send(msgs[i]):
                tokens[j] -= 1
                sent[i] += 1
                if i in topup:
                    topup[i] -= 1
                    if topup[i] <= 0:
                        need.discard(i)
                        break
        loop.poll(0.02)
        if now() >= next_check:
            next_check = now() + 0.25
            queues = tx_queues(port)
            for i in list(need):
                if i in topup:
                    continue
                cur = queues.get(peer_ports[i], 0)
                # Full: no growth although more was sent, or as full as the
                # first ones found full. Then 96 KB more, so that something
                # waits in the member's own queue (charged against
                # --max-queue) and everything after it queues too.
                if (sent[i] >= 4 and 0 < cur <= last[i]) or (plateau and cur >= plateau * 0.98):
                    topup[i] = 24
                    full.add(i)
                    plateau = max(plateau or 0, cur)
                if cur > last[i]:
                    sent[i] = 0
                last[i] = cur
    for h in helpers:
        h.close("done")
    gone = set(helpers)
    loop.clients = [c for c in loop.clients if c not in gone]
    queues = tx_queues(port)
    return full, [queues.get(pp, 0) for pp in peer_ports]


def chat_pairs(ctx, p, row, extra_flags):
    pairs, seconds, every, lines = int(p["pairs"]), float(p["seconds"]), float(p["every"]), int(p["lines"])
    block = (b"x" * 3999 + b"\n") * lines
    row.desc = ("chat serve %s: %d pairs, each alone in its room; the slow one (SO_RCVBUF 2 KiB, never reads) "
                "sends %d x 4000 B every %g s, its partner a short line, for %g s; first %d helpers per pair "
                "fill the slow one's socket with private messages (then leave)"
                % (" ".join(extra_flags) or "(default flags)", pairs, lines, every, seconds, int(p["helpers"])))
    with Server(ctx, row.name, lambda port: ["chat", "serve", "--no-console"] + extra_flags + ctx.queue_flags()
                + ["%s:%d" % (HOST, port)]) as srv:
        loop = Loop()
        ready = [False] * pairs
        left = [None] * pairs

        def partner(i):
            joined = (b"* a%d joined r%d" % (i, i), b"* you are now in r%d with 1 other" % i)
            gone = b"* a%d left (" % i

            def on_line(c, ln):
                # "moved to rN" is the slow member leaving the lobby at the start.
                if ln.startswith(gone) and not ln.startswith(gone + b"moved to "):
                    left[i] = ln[len(gone):].rstrip(b")").decode(errors="replace")
                elif not ready[i] and ln.startswith(joined):
                    ready[i] = True
            return on_line

        slow = [Client(loop, reads=False, rcvbuf=2048, max_out=64 * KIB,
                       on_up=lambda c, i=i: c.send(b"/nick a%d\n/join r%d\n" % (i, i))) for i in range(pairs)]
        fast = [Client(loop, on_line=partner(i), on_up=lambda c, i=i: c.send(b"/nick b%d\n/join r%d\n" % (i, i)))
                for i in range(pairs)]
        up = loop.open(slow, srv.port) + loop.open(fast, srv.port)
        loop.run(20, stop=lambda: all(ready))
        if not all(ready):
            row.notes.append("only %d of %d pairs met in their room" % (sum(ready), pairs))
        t = now()
        full, queues = fill_sockets(loop, srv.port, [b"a%d" % i for i in range(pairs)],
                                    [a.sock.getsockname()[1] if not a.closed else 0 for a in slow],
                                    int(p["helpers"]), float(p["fill_seconds"]))
        row.notes.append("fill: %d/%d slow members' sockets full in %.1f s (kernel send queue median %.0f KiB)"
                         % (len(full), pairs, now() - t, statistics.median(queues) / KIB if queues else 0))
        srv.sampler.sample()
        rss_filled = srv.sampler.rss

        def tick():
            for a, b in zip(slow, fast):
                if not a.closed:
                    a.send(block)
                if not b.closed:
                    b.send(b"hi\n")

        ran = loop.run(seconds, tick, every, stop=srv.sampler.over.is_set)
        loop.run(0.5)
        server_row(row, srv, 2 * pairs * ctx.max_queue // KIB + ctx.overhead_kib,
                   "%d clients x %s + %s" % (2 * pairs, mib(ctx.max_queue // KIB), mib(ctx.overhead_kib)))
        too_slow = sum(1 for r in left if r == "too slow")
        dropped = sum(1 for a, r in zip(slow, left) if a.closed or r is not None)
        # What waits for a slow member is its own copy of what it was sent
        # and did not take: the fill's top-up (24 private messages of ~4 KB)
        # and its partner's short lines. It must be dropped exactly when
        # that passes --max-queue, and not for bytes it merely shared.
        due = 24 * 4020 + int(ran / every) * len(b"<b%d> hi\n" % pairs)
        must_drop = due > ctx.max_queue
        if must_drop:
            row.expect = "slow members dropped (too slow): ~%s due > --max-queue" % mib(due // KIB)
            row.expect_ok = dropped == pairs and too_slow == pairs
        else:
            row.expect = "slow members kept: ~%s due <= --max-queue" % mib(due // KIB)
            row.expect_ok = dropped == 0
        row.seen = "%s: %d/%d closed, %d announced 'too slow'" % (yes(row.expect_ok), dropped, pairs, too_slow)
        other = collections.Counter(r for r in left if r not in (None, "too slow"))
        if other:
            row.notes.append("other reasons partners saw: %s" % dict(other))
        lost = sum(1 for b in fast if b.closed)
        if lost:
            row.notes.append("%d partners (who read) were disconnected too" % lost)
        deferred = sum(a.skipped for a in slow)
        row.notes.append("%d/%d clients connected; RSS %s once filled; ran %.1f s; slow members sent %.1f MiB "
                         "(%d blocks deferred, the server not reading them); partners read %.1f MiB"
                         % (up, 2 * pairs, mib(rss_filled), ran, sum(a.tx for a in slow) / MIB, deferred,
                            sum(b.rx for b in fast) / MIB))
        loop.close_all()


@attack("chat-pairs", dict(pairs=100, seconds=40, every=0.2, lines=4, helpers=3, fill_seconds=30),
        dict(pairs=20, seconds=16, every=0.2, lines=4, helpers=3, fill_seconds=15))
def run_chat_pairs(ctx, p, row):
    chat_pairs(ctx, p, row, [])


@attack("chat-pairs-rate0", dict(pairs=20, seconds=30, every=0.01, lines=8, helpers=3, fill_seconds=30),
        dict(pairs=5, seconds=6, every=0.01, lines=8, helpers=3, fill_seconds=15))
def run_chat_pairs_rate0(ctx, p, row):
    chat_pairs(ctx, p, row, ["--rate", "0"])


# --------------------------------------------------------------------------
# 2. listen --greet / --echo: replies held across a blocked write.


def service_answers(port, service, timeout=2.0):
    """A new client sends one line; True when the answer arrives in time."""
    want = b"hello probe\n" if service == "--greet" else b"probe\n"
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"probe\n")
            got = b""
            while len(got) < len(want):
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
            return got == want
    except OSError:
        return False


def flood_service(ctx, p, row, service, byte):
    n, seconds = int(p["clients"]), float(p["seconds"])
    n = ctx.fit_clients(n, row)
    block = byte * (256 * KIB)
    row.desc = ("listen %s -k: %d clients write 256 KiB blocks of %r as fast as the server reads them and "
                "never read, for %g s" % (service, n, byte, seconds))
    with Server(ctx, row.name, lambda port: ["listen", service, "-k"] + ctx.queue_flags()
                + ["%s:%d" % (HOST, port)]) as srv:
        loop = Loop()
        clients = [Client(loop, reads=False, pump=lambda: block) for _ in range(n)]
        up = loop.open(clients, srv.port)
        ran = loop.run(seconds, stop=srv.sampler.over.is_set)
        answers = service_answers(srv.port, service)
        per = ctx.max_queue + 256 * KIB
        server_row(row, srv, n * per // KIB + ctx.overhead_kib,
                   "%d x (%s + 256 KiB) + %s" % (n, mib(ctx.max_queue // KIB), mib(ctx.overhead_kib)))
        closed = sum(1 for c in clients if c.closed)
        row.expect = "a new client answered within 2 s"
        row.expect_ok = answers
        row.seen = yes(answers)
        row.notes.append("%d/%d connected; ran %.1f s; clients wrote %.1f MiB; %d closed by the server"
                         % (up, n, ran, sum(c.tx for c in clients) / MIB, closed))
        loop.close_all()


@attack("greet", dict(clients=100, seconds=15), dict(clients=20, seconds=4))
def run_greet(ctx, p, row):
    flood_service(ctx, p, row, "--greet", b"\n")


@attack("greet-many", dict(clients=900, seconds=15), dict(clients=100, seconds=4))
def run_greet_many(ctx, p, row):
    flood_service(ctx, p, row, "--greet", b"\n")


@attack("greet-nonl", dict(clients=100, seconds=10), dict(clients=20, seconds=3))
def run_greet_nonl(ctx, p, row):
    flood_service(ctx, p, row, "--greet", b"x")


@attack("echo", dict(clients=100, seconds=10), dict(clients=20, seconds=3))
def run_echo(ctx, p, row):
    flood_service(ctx, p, row, "--echo", b"\n")


# --------------------------------------------------------------------------
# 3. listen --broker: small messages cost more than they are charged.


@attack("broker", dict(slow=200, senders=8, rate=25000, slow_rcvbuf=2048, seconds=40, settle=3),
        dict(slow=20, senders=8, rate=25000, slow_rcvbuf=2048, seconds=12, settle=2))
def run_broker(ctx, p, row):
    n_slow, n_fast = int(p["slow"]), int(p["senders"])
    seconds, settle, rate = float(p["seconds"]), float(p["settle"]), float(p["rate"])
    rcvbuf = int(p["slow_rcvbuf"])
    msg = b"123456789\n"
    row.desc = ("listen --broker -k: %d clients that never read%s, %d senders writing 10-byte lines (one write "
                "each, TCP_NODELAY, %s) for up to %g s or until every slow client is dropped"
                % (n_slow, " (SO_RCVBUF %d)" % rcvbuf if rcvbuf else "", n_fast,
                   "%g lines/s in all, evenly spaced" % rate if rate else "as fast as they go", seconds))
    with Server(ctx, row.name, lambda port: ["listen", "--broker", "-k"] + ctx.queue_flags()
                + ["%s:%d" % (HOST, port)]) as srv:
        loop = Loop()
        slow = [Client(loop, reads=False, rcvbuf=rcvbuf or None) for _ in range(n_slow)]
        fast = [Client(loop, nodelay=True, max_out=64 * KIB) for _ in range(n_fast)]
        up = loop.open(slow, srv.port) + loop.open(fast, srv.port)
        loop.run(0.5)
        srv.sampler.sample()
        fds_all = srv.sampler.fds or 0

        def dropped():
            text = srv.stderr_text()
            logged = text.count("too slow")
            by_fds = max(0, fds_all - (count_fds(srv.proc.pid) or fds_all))
            return min(n_slow, max(logged, by_fds)), logged

        # Evenly spaced lines, so that the server reads one line at a time
        # (a message each) while it keeps up; no catch-up bursts when late.
        step = n_fast / rate if rate else 0.0
        t0 = now()
        next_at = [t0 + k * step / n_fast for k in range(n_fast)]

        def tick():
            t = now()
            for k, c in enumerate(fast):
                if not step:
                    c.send(msg)
                elif t >= next_at[k]:
                    c.send(msg)
                    next_at[k] += step
                    if next_at[k] < t - 0.005:
                        next_at[k] = t

        ran = loop.run(seconds, tick, 0.0,
                       stop=lambda: srv.sampler.over.is_set() or dropped()[0] >= n_slow)
        sent = sum(c.tx for c in fast)
        loop.run(settle)
        rss_idle = (proc_status(srv.proc.pid) or (None,))[0]
        n_dropped, logged = dropped()
        for c in slow:
            c.close("done")
        loop.run(settle)
        rss_left = (proc_status(srv.proc.pid) or (None,))[0]
        server_row(row, srv, (n_slow + n_fast) * ctx.max_queue // KIB + ctx.overhead_kib,
                   "%d clients x %s + %s" % (n_slow + n_fast, mib(ctx.max_queue // KIB), mib(ctx.overhead_kib)))
        returned = rss_left is not None and rss_left <= srv.base_rss + 16 * KIB
        row.expect = "slow clients dropped; RSS after they left within 16 MiB of the idle server's"
        row.expect_ok = n_dropped == n_slow and returned
        row.seen = "%s: %d/%d dropped; RSS %s idle, %s %g s after the senders stopped, %s %g s after all slow left" % (
            yes(row.expect_ok), n_dropped, n_slow, mib(srv.base_rss), mib(rss_idle), settle, mib(rss_left), settle)
        row.notes.append("%d/%d connected; ran %.1f s; senders wrote %.1f MiB (%d lines, %.0f/s); %d 'too slow' "
                         "lines on the server's stderr" % (up, n_slow + n_fast, ran, sent / MIB, sent // len(msg),
                                                           sent // len(msg) / max(ran, 0.001), logged))
        loop.close_all()


# --------------------------------------------------------------------------
# 4. http: no limit on the number of codings.


class Payloads(http.server.ThreadingHTTPServer):
    daemon_threads = True


class PayloadHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        headers, body = self.server.payloads.get(self.path, ([], b"not found\n"))
        self.send_response(200 if self.path in self.server.payloads else 404)
        chunked = any(k.lower() == "transfer-encoding" for k, _ in headers)
        for k, v in headers:
            self.send_header(k, v)
        if not chunked:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            else:
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *a):
        pass


def gzip_layers(data, layers):
    """`layers` gzip members nested inside each other (stored blocks: fast to
    build, and every layer is a genuine gzip stream to decode)."""
    for _ in range(layers):
        c = zlib.compressobj(0, zlib.DEFLATED, 31)
        data = c.compress(data) + c.flush()
    return data


def run_http_client(ctx, argv, timeout=90.0):
    """Runs `sockit http ...`; returns (exit code, peak RSS KiB, seconds, stopped at cap)."""
    t0 = now()
    p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    capped = False
    status = None
    while True:
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status = st
            break
        cur = proc_status(p.pid)
        if not capped and cur and cur[0] > ctx.cap_kib:
            capped = True
            p.kill()
        elif now() - t0 > timeout:
            p.kill()
        time.sleep(0.01)
    p.returncode = os.waitstatus_to_exitcode(status)
    LIVE.pop(p.pid, None)
    err = p.stderr.read().decode(errors="replace").strip()
    p.stderr.close()
    return p.returncode, ru.ru_maxrss, now() - t0, capped, err


def http_attack(ctx, p, row, path, compressed, describe):
    codings = int(p.get("codings", 0))
    layers = int(p.get("layers", 0))
    inner = b"hello\n"
    if path == "/ce":
        headers = [("Content-Encoding", ",".join(["gzip"] * codings))]
        body = gzip_layers(inner, 1)
    elif path == "/te":
        headers = [("Transfer-Encoding", ",".join(["gzip"] * (codings - 1) + ["chunked"]))]
        body = gzip_layers(inner, 1)
    else:
        t = now()
        body = gzip_layers(inner, layers)
        headers = [("Content-Encoding", ",".join(["gzip"] * layers))]
        row.notes.append("body: %d nested gzip layers, %d bytes (%.1f s to build)" % (layers, len(body), now() - t))
    row.desc = describe(codings, layers)
    srv = Payloads((HOST, 0), PayloadHandler)
    srv.payloads = {path: (headers, body)}
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        url = "http://%s:%d%s" % (HOST, srv.server_address[1], path)
        argv = [ctx.sockit, "http", "-s", "-o", "/dev/null", "-m", "60"] + (["--compressed"] if compressed else []) + [url]
        rc, peak, secs, capped, err = run_http_client(ctx, argv)
    finally:
        srv.shutdown()
        srv.server_close()
    row.rss = peak
    row.bound = ctx.overhead_kib
    row.bound_text = "%s (fixed)" % mib(ctx.overhead_kib)
    row.expect = "exit 61"
    row.expect_ok = rc == 61
    row.seen = "%s: exit %d after %.1f s" % (yes(rc == 61), rc, secs)
    row.notes.append("header: %d bytes; client stderr: %s" % (len(headers[0][1]), err[:200] or "(empty)"))
    if capped:
        row.notes.append("client killed at the RSS cap (%s)" % mib(ctx.cap_kib))


@attack("http-ce", dict(codings=12000), dict(codings=2000))
def run_http_ce(ctx, p, row):
    http_attack(ctx, p, row, "/ce", True, lambda c, _: "http --compressed: Content-Encoding lists gzip %d times" % c)


@attack("http-te", dict(codings=12000), dict(codings=2000))
def run_http_te(ctx, p, row):
    http_attack(ctx, p, row, "/te", False,
                lambda c, _: "http (no --compressed): Transfer-Encoding lists gzip %d times, then chunked" % (c - 1))


@attack("http-nested", dict(layers=12500), dict(layers=2000))
def run_http_nested(ctx, p, row):
    http_attack(ctx, p, row, "/nested", True,
                lambda _, l: "http --compressed: %d genuinely nested gzip layers, each listed" % l)


# --------------------------------------------------------------------------
# 5. chat serve --max-clients and TLS handshakes.


def tls_probe(port, timeout=2.0):
    """A legitimate TLS client: (outcome, seconds). Outcomes: served, full,
    refused (closed or reset at once), no answer."""
    t0 = now()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE

    def left():
        return max(0.01, timeout - (now() - t0))

    try:
        with socket.create_connection((HOST, port), timeout=left()) as raw:
            raw.settimeout(left())
            with tls.wrap_socket(raw, server_hostname="localhost") as s:
                data = b""
                while b"\n" not in data:
                    s.settimeout(left())
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
    except (socket.timeout, TimeoutError):
        return "no answer", now() - t0
    except (ssl.SSLError, OSError):
        return "refused", now() - t0
    if data.startswith(b"* welcome"):
        return "served", now() - t0
    if b"server full" in data:
        return "full", now() - t0
    return "refused", now() - t0


def tls_attack(ctx, p, row, nofile):
    n, hold, max_clients = int(p["conns"]), float(p["seconds"]), int(p["max_clients"])
    n = ctx.fit_clients(n, row)
    row.desc = ("chat serve --tls-self-signed --max-clients %d%s: %d connections send %d bytes of a ClientHello "
                "and stall for %g s; a legitimate TLS client tries every second (2 s each)"
                % (max_clients, ", server RLIMIT_NOFILE %d" % nofile if nofile else "", n, len(PARTIAL_HELLO), hold))
    with Server(ctx, row.name, lambda port: ["chat", "serve", "--no-console", "--tls-self-signed", "--max-clients",
                                             str(max_clients)] + ctx.queue_flags() + ["%s:%d" % (HOST, port)],
                nofile=nofile) as srv:
        loop = Loop()
        stall = [Client(loop, reads=False, on_up=lambda c: c.send(PARTIAL_HELLO)) for _ in range(n)]
        probes = []
        stop_probes = threading.Event()

        def prober():
            while not stop_probes.wait(1.0):
                probes.append(tls_probe(srv.port))

        th = threading.Thread(target=prober, daemon=True)
        th.start()
        t0 = now()
        up = loop.open(stall, srv.port, inflight=256, seconds=hold)
        opened = now() - t0
        loop.run(max(hold - opened, 3.5))
        stop_probes.set()
        th.join(3)
        srv.sampler.sample()
        server_row(row, srv, max_clients * ctx.max_queue // KIB + ctx.overhead_kib,
                   "%d clients x %s + %s" % (max_clients, mib(ctx.max_queue // KIB), mib(ctx.overhead_kib)))
        fd_ok = srv.sampler.peak_fds <= max_clients + 32
        answered = [o for o, _ in probes if o != "no answer"]
        probes_ok = bool(probes) and len(answered) == len(probes)
        row.expect = "fds <= %d; legitimate client answered within 2 s" % (max_clients + 32)
        row.expect_ok = fd_ok and probes_ok
        kinds = collections.Counter(o for o, _ in probes)
        row.seen = "%s: peak %d fds; answered %d/%d (%s)" % (
            yes(row.expect_ok), srv.sampler.peak_fds, len(answered), len(probes),
            ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "no probe ran")
        row.notes.append("%d/%d stalled connections established in %.1f s (the rest still in the SYN queue)"
                         % (up, n, opened) if up < n else "%d stalled connections established in %.1f s" % (n, opened))
        row.notes.append("server stderr: %d 'accept failed' lines" % srv.stderr_text().count("accept failed"))
        loop.close_all()


@attack("tls", dict(conns=5000, seconds=8, max_clients=10), dict(conns=500, seconds=4, max_clients=10))
def run_tls(ctx, p, row):
    tls_attack(ctx, p, row, None)


@attack("tls-lowfd", dict(conns=5000, seconds=8, max_clients=10, nofile=1024),
        dict(conns=1500, seconds=5, max_clients=10, nofile=1024))
def run_tls_lowfd(ctx, p, row):
    tls_attack(ctx, p, row, int(p["nofile"]))


# --------------------------------------------------------------------------
# 6. chat serve: /who costs O(room size).


def who_worker(port, n, every, go, stop, out):
    """Child process: `n` lobby members that send /who every `every` seconds
    once `go` is set, and read every reply."""
    try:
        loop = Loop()
        count = collections.Counter()
        first = {}

        def on_line(c, ln):
            if ln.startswith(b"* lobby ("):
                count["replies"] += 1
            elif ln.startswith(b"! "):
                count["errors"] += 1
                first.setdefault("error", ln[:100].decode(errors="replace"))

        cs = [Client(loop, on_line=on_line) for _ in range(n)]
        up = loop.open(cs, port, inflight=64)
        while not go.is_set() and not stop.is_set():
            loop.poll(0.05)
        t0 = now()

        def tick():
            for c in cs:
                c.send(b"/who\n")

        loop.run(3600, tick, every, stop=stop.is_set)
        out.put(dict(connected=up, replies=count["replies"], errors=count["errors"], seconds=now() - t0,
                     first_error=first.get("error"),
                     closed=sum(1 for c in cs if c.closed), rx=sum(c.rx for c in cs)))
        loop.close_all()
    except Exception as e:  # reported by the parent
        out.put(dict(error=repr(e)))


@attack("who", dict(idle=3000, askers=100, every=0.05, seconds=8, wait=10),
        dict(idle=1000, askers=50, every=0.05, seconds=3, wait=5))
def run_who(ctx, p, row):
    n_idle, n_who, every, seconds = int(p["idle"]), int(p["askers"]), float(p["every"]), float(p["seconds"])
    n_idle = ctx.fit_clients(n_idle + n_who, row) - n_who
    row.desc = ("chat serve: %d idle members in the lobby (never read), %d members sending /who every %g s; "
                "a probe's line latency for %g s without, then with, the /who load"
                % (n_idle, n_who, every, seconds))
    mp = multiprocessing.get_context("fork")
    with Server(ctx, row.name, lambda port: ["chat", "serve", "--no-console"] + ctx.queue_flags()
                + ["%s:%d" % (HOST, port)]) as srv:
        go, stop, out = mp.Event(), mp.Event(), mp.Queue()
        worker = mp.Process(target=who_worker, args=(srv.port, n_who, every, go, stop, out), daemon=True)
        worker.start()
        loop = Loop()
        try:
            idle = [Client(loop, reads=False) for _ in range(n_idle)]
            up = loop.open(idle, srv.port, inflight=128, seconds=60)
            sent, lat = {}, {}
            phase = {"name": None}

            def on_probe(c, ln):
                i = ln.find(b"> p ")
                if i > 0 and ln.startswith(b"<probe1>"):
                    key = ln[i + 4:]
                    if key in sent and key not in lat:
                        lat[key] = (now() - sent[key]) * 1000

            p1 = Client(loop, on_up=lambda c: c.send(b"/nick probe1\n"))
            p2 = Client(loop, on_line=on_probe, on_up=lambda c: c.send(b"/nick probe2\n"))
            loop.open([p1, p2], srv.port)
            loop.run(1.0)
            seq = [0]

            def probe_tick():
                seq[0] += 1
                key = b"%s %d" % (phase["name"], seq[0])
                sent[key] = now()
                p1.send(b"p " + key + b"\n")

            results = {}
            for name in (b"idle", b"who"):
                if name == b"who":
                    go.set()
                    loop.run(1.0)
                phase["name"] = name
                cpu0, t0 = cpu_seconds(srv.proc.pid), now()
                loop.run(seconds, probe_tick, 0.1, stop=srv.sampler.over.is_set)
                cpu1, t1 = cpu_seconds(srv.proc.pid), now()
                mine = [k for k in sent if k.startswith(name + b" ")]
                # Late lines still count: wait for them (the load goes on).
                loop.run(float(p["wait"]), stop=lambda: all(k in lat for k in mine))
                got = [lat.get(k, float("inf")) for k in mine]
                n_sent = len(mine)
                cpu = (cpu1 - cpu0) / (t1 - t0) * 100 if cpu0 is not None and cpu1 is not None else None
                results[name] = (got, n_sent, cpu)
            stop.set()
            try:
                w = out.get(timeout=15)
            except Exception:
                w = dict(error="no report from the /who clients")
            worker.join(5)
        finally:
            stop.set()
            if worker.is_alive():
                worker.terminate()
                worker.join(2)
        server_row(row, srv, None, "")
        row.bound_text = "-"

        def med(xs):
            return statistics.median(xs) if xs else None

        def fmt(v):
            if v is None:
                return "-"
            return "> %g s (lost)" % float(p["wait"]) if v == float("inf") else "%.1f ms" % v

        idle_p50 = med(results[b"idle"][0])
        who_p50 = med(results[b"who"][0])
        row.expect = "p50 line latency with /who <= 2x without"
        row.expect_ok = idle_p50 is not None and who_p50 is not None and who_p50 <= 2 * idle_p50
        row.seen = "%s: p50 %s with /who, %s without" % (yes(row.expect_ok), fmt(who_p50), fmt(idle_p50))
        for name, (got, n_sent, cpu) in results.items():
            q = sorted(got)
            p90 = q[int(len(q) * 0.9)] if q else None
            row.notes.append("%s: %d/%d probe lines arrived, p50 %s, p90 %s, server CPU %s while probing" % (
                name.decode(), sum(1 for v in got if v != float("inf")), n_sent, fmt(med(got)), fmt(p90),
                "-" if cpu is None else "%.0f%%" % cpu))
        if p1.closed or p2.closed:
            row.notes.append("probe clients disconnected: %s / %s" % (p1.closed, p2.closed))
        if "error" in w:
            row.notes.append("/who clients: " + w["error"])
        else:
            row.notes.append("%d/%d idle members connected; /who clients: %d/%d connected, %.0f replies/s, "
                             "%d '!' lines%s, %d disconnected"
                             % (up, n_idle, w["connected"], n_who, w["replies"] / max(w["seconds"], 0.001),
                                w["errors"], " (first: %s)" % w["first_error"] if w["first_error"] else "",
                                w["closed"]))
        loop.close_all()


# --------------------------------------------------------------------------


class Ctx:
    def __init__(self, a, sockit):
        self.sockit = sockit
        self.cap_kib = a.rss_cap_mib * 1024
        self.overhead_kib = a.overhead_mib * 1024
        self.max_queue = a.max_queue or MIB
        self.explicit_queue = a.max_queue
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def queue_flags(self):
        return ["--max-queue", str(self.explicit_queue)] if self.explicit_queue else []

    def fit_clients(self, n, row):
        """Fewer clients when this process cannot hold `n` sockets."""
        room = self.nofile - 200
        if n > room:
            row.notes.append("scaled down from %d to %d clients: RLIMIT_NOFILE is %d" % (n, room, self.nofile))
            return room
        return n


def print_table(rows):
    head = ("attack", "peak RSS", "bound", "verdict", "fds peak/end", "expected", "seen")
    cells = [head] + [(r.name, mib(r.rss), r.bound_text or "-", r.verdict, r.fds or "-", r.expect or "-",
                       r.seen if r.error is None else "ERROR: " + r.error) for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for i, c in enumerate(cells):
        print("  ".join(x.ljust(width[j]) for j, x in enumerate(c)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in width))


def parse_sets(items, ap):
    out = collections.defaultdict(dict)
    for item in items:
        m = re.match(r"^([\w-]+)\.(\w+)=(.+)$", item)
        if not m or m.group(1) not in ATTACKS:
            ap.error("--set wants ATTACK.PARAM=VALUE with a known attack, got %r" % item)
        name, key, val = m.groups()
        if key not in ATTACKS[name][1]:
            ap.error("%s has no parameter %r (it has %s)" % (name, key, ", ".join(ATTACKS[name][1])))
        out[name][key] = val
    return out


def main():
    ap = argparse.ArgumentParser(prog="bench/attack.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="attacks to run: a name or a prefix (chat, greet, http, tls)")
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes (~1 min in all)")
    ap.add_argument("--set", action="append", default=[], metavar="ATTACK.PARAM=VALUE",
                    help="override one size (repeatable); --list shows them")
    ap.add_argument("--list", action="store_true", help="list the attacks and their sizes, then exit")
    ap.add_argument("--max-queue", type=int, help="pass --max-queue BYTES to the servers (bounds use it; "
                                                  "default: theirs, 1 MiB)")
    ap.add_argument("--overhead-mib", type=int, default=64, help="fixed overhead allowed in every bound (64)")
    ap.add_argument("--rss-cap-mib", type=int, default=4096,
                    help="stop an attack once the target's RSS passes this (4096)")
    ap.add_argument("--sockit", default=os.path.join(TARGET, "release", "sockit"),
                    help="the sockit binary (default: $CARGO_TARGET_DIR or target/, release)")
    a = ap.parse_args()
    if a.list:
        for name, (fn, full, quick) in ATTACKS.items():
            print("%-17s full %s" % (name, " ".join("%s=%s" % kv for kv in full.items())))
            print("%-17s quick %s" % ("", " ".join("%s=%s" % kv for kv in quick.items())))
        return 0
    sets = parse_sets(a.set, ap)
    names = [n for n in ATTACKS if not a.names or any(n == s or n.startswith(s + "-") for s in a.names)]
    unknown = [s for s in a.names if not any(n == s or n.startswith(s + "-") for n in ATTACKS)]
    if unknown:
        ap.error("unknown attack(s): %s (see --list)" % ", ".join(unknown))
    sockit = os.path.abspath(a.sockit)
    if not os.access(sockit, os.X_OK):
        sys.exit("missing %s: run `cargo build --release` (or bench/run attack)" % sockit)
    # Thousands of sockets on the harness's side; the servers inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    ctx = Ctx(a, sockit)
    rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    ver = subprocess.run([sockit, "--version"], capture_output=True, text=True)
    print("attack suite: %s (git %s) %s" % (ver.stdout.strip() or "?", rev.stdout.strip() or "?", sockit))
    print("  %s sizes; %d CPUs, load average %.1f, kernel %s, RLIMIT_NOFILE %d; bounds: max-queue %s, "
          "overhead %s; RSS cap %s" % ("quick" if a.quick else "full", os.cpu_count(), os.getloadavg()[0],
                                      platform.release(), ctx.nofile, mib(ctx.max_queue // KIB),
                                      mib(ctx.overhead_kib), mib(ctx.cap_kib)))
    print(flush=True)
    rows = []
    t_all = now()
    try:
        for name in names:
            fn, full, quick = ATTACKS[name]
            p = dict(quick if a.quick else full)
            p.update(sets.get(name, {}))
            row = Row(name, "")
            log("attack %s: %s" % (name, " ".join("%s=%s" % kv for kv in p.items())))
            t = now()
            try:
                fn(ctx, p, row)
            except Exception as e:
                row.error = "%s: %s" % (type(e).__name__, e)
            finally:
                kill_all()
            log("  -> %s peak %s, bound %s, %s; %s (%.0f s)" % (name, mib(row.rss), row.bound_text or "-",
                                                             row.verdict, row.seen or row.error, now() - t))
            rows.append(row)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        kill_all()
    print("attack suite: %d attack(s) in %.0f s" % (len(rows), now() - t_all))
    print()
    print_table(rows)
    print()
    for r in rows:
        print("%s: %s" % (r.name, r.desc))
        for n in r.notes:
            print("    " + n)
    bad = [r.name for r in rows if not r.ok]
    print()
    print("result: %s" % ("every attack within its bound, as expected" if not bad else
                          "OVER a bound or not as expected: " + ", ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
