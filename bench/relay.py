#!/usr/bin/env python3
"""Relay throughput and end-to-end integrity benchmark for sockit.

Relay: N MiB of random bytes from a file go through each tool's client over
loopback TCP into the same tool's server, which writes to /dev/null. The tools
are sockit, nc.openbsd, ncat and socat. One run is timed from the client's start
to the server's exit; runs are interleaved (run 1 of every tool, then run 2 ...,
with the tool order rotated each round) so machine noise hits all tools alike.

Integrity: the same file goes from `sockit connect` into `sockit listen > FILE`
over TCP, a Unix stream socket and TLS (self-signed, pinned), and once more over
TCP with the listener's stdin at EOF (`< /dev/null`, as in a script or under
`&`). The SHA-256 of every output is compared with the input's.

Unix seqpacket: M MiB of random bytes from a file go from `sockit connect
unix-seqpacket:P` into `sockit listen unix-seqpacket:P > FILE`, in line mode (a
message per line) and with --datagram-size 65507, next to socat's seqpacket
client and server (socktype=5) in the same rounds; every output's SHA-256 must
equal the input's. CPU time (user + system) of both ends comes from their rusage.

Servers' stdin: an open pipe that the harness closes as soon as the client has
started, so every tool sees the same thing: stdin that ends early on its side.

Only 127.0.0.1 and Unix sockets under a private temp dir are used. Every wait is
bounded, and every process this script starts is killed when it exits.

Standard library only; Linux only (/proc/net/tcp, pidfd).
"""

import argparse
import hashlib
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
GIB = 1 << 30

# --------------------------------------------------------------------------
# Process bookkeeping: everything we start is registered here and killed at exit.

LIVE = {}
# pid -> CPU seconds (user + system, all threads) of a process reaped by
# wait_exits(): the growth of RUSAGE_CHILDREN across its wait().
CPU = {}


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    LIVE[p.pid] = p
    return p


def forget(p):
    LIVE.pop(p.pid, None)
    if p.stdin is not None:
        try:
            p.stdin.close()
        except OSError:
            pass


def kill(p):
    """Kills one process we started (by its pid only) and reaps it."""
    if p.poll() is None:
        try:
            p.kill()
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    forget(p)


def kill_all():
    for p in list(LIVE.values()):
        kill(p)


def wait_exits(procs, deadline, stop_early=None):
    """Blocks until every process in `procs` has exited or `deadline`
    (time.monotonic) passes. Returns {pid: (returncode, perf_counter at exit)};
    processes still running at the deadline are missing from the result.

    Uses pidfds so the exit time is exact (Popen.wait(timeout) sleeps in steps
    of up to 50 ms). `stop_early(done)` may end the wait before all have exited.
    """
    done = {}
    pending = {p.pid: p for p in procs}
    fds = {}
    try:
        for pid in pending:
            try:
                fds[pid] = os.pidfd_open(pid)
            except (AttributeError, OSError):
                fds[pid] = None
        poller = select.poll()
        byfd = {}
        for pid, fd in fds.items():
            if fd is not None:
                poller.register(fd, select.POLLIN)
                byfd[fd] = pid
        fallback = any(fd is None for fd in fds.values())
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Wake up now and then so stop_early is re-checked; an exit still
            # wakes the poll at once, so the timestamps stay exact.
            step = min(left, 0.001 if fallback else 0.1)
            events = poller.poll(step * 1000) if byfd else (time.sleep(step) or [])
            now = time.perf_counter()
            ready = [byfd[fd] for fd, _ in events]
            if fallback:
                ready += [pid for pid in pending if fds[pid] is None and pending[pid].poll() is not None]
            for pid in ready:
                if pid not in pending:
                    continue
                p = pending.pop(pid)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                done[pid] = (p.wait(), now)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                CPU[pid] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                if fds[pid] is not None:
                    poller.unregister(fds[pid])
                    del byfd[fds[pid]]
            if stop_early is not None and stop_early(done):
                break
    finally:
        for fd in fds.values():
            if fd is not None:
                os.close(fd)
    return done


def tail(path, n=5):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


# --------------------------------------------------------------------------
# Readiness: sockit reports its port on stderr (-v); the peers get a fixed port
# and are ready once /proc/net/tcp shows it in LISTEN state (0A) on a socket
# that the server process owns. Never probe with connect(): the one client the
# server accepts would be the probe.


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOOPBACK_HEX = (
    socket.inet_aton("127.0.0.1")[::-1] if sys.byteorder == "little" else socket.inet_aton("127.0.0.1")
).hex().upper()


def listen_inode(port):
    want = "%s:%04X" % (LOOPBACK_HEX, port)
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


def proc_listen_ready(port):
    def ready(p, _errpath):
        inode = listen_inode(port)
        if inode is None:
            return None
        if not owns_socket(p.pid, inode):
            raise ServerError("port %d is in LISTEN state but not owned by the server (pid %d)" % (port, p.pid))
        return {"port": port}

    return ready


LISTEN_TCP_RE = re.compile(rb"listening on 127\.0\.0\.1:(\d+) \(tcp\)")
LISTEN_UNIX_RE = re.compile(rb"listening on (\S+) \(unix\)")
FINGERPRINT_RE = re.compile(rb"TLS certificate SHA-256 ([0-9A-Fa-f:]+)")
STATS_RE = re.compile(rb"disconnected: (\d+) bytes sent, (\d+) bytes received")


def sockit_ready(unix=False, tls=False):
    def ready(_p, errpath):
        with open(errpath, "rb") as f:
            text = f.read()
        m = (LISTEN_UNIX_RE if unix else LISTEN_TCP_RE).search(text)
        if not m:
            return None
        info = {"port": None if unix else int(m.group(1)), "path": m.group(1).decode() if unix else None}
        if tls:
            fp = FINGERPRINT_RE.search(text)
            if not fp:
                raise ServerError("listening, but no TLS certificate fingerprint on stderr")
            info["fp"] = fp.group(1).decode()
        return info

    return ready


class ServerError(Exception):
    pass


# --------------------------------------------------------------------------
# One transfer.


class Result:
    def __init__(self):
        self.seconds = None
        self.server_rc = None
        self.client_rc = None
        self.problems = []
        self.server_bytes = None  # sockit -v only
        self.server_cpu = None  # seconds, user + system
        self.client_cpu = None

    @property
    def ok(self):
        return not self.problems

    def rate(self, nbytes):
        return nbytes / GIB / self.seconds if self.seconds else None


def transfer(*, server_argv, ready, client_argv, infile, outfile, workdir, tag, timeout,
             server_stdin_eof=False, expect_bytes=None, attempts=3):
    """Starts the server, waits until it listens, runs the client with `infile`
    as stdin, and times client start -> server exit.

    server_argv / client_argv: callables taking the server's info dict (port,
    path, fp) and returning argv; server_argv gets a fresh port per attempt.
    """
    res = Result()
    errs = os.path.join(workdir, tag + ".server.err")
    errc = os.path.join(workdir, tag + ".client.err")
    server = None
    info = None
    for attempt in range(attempts):
        port = free_port()
        with open(errs, "wb") as err, open(outfile, "wb") if outfile else open(os.devnull, "wb") as out:
            server = spawn(
                server_argv(port),
                stdin=subprocess.DEVNULL if server_stdin_eof else subprocess.PIPE,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + 10
        try:
            while True:
                info = ready(server, errs)
                if info is not None:
                    break
                if server.poll() is not None:
                    raise ServerError("server exited %d before listening: %s" % (server.returncode, tail(errs)))
                if time.monotonic() > deadline:
                    raise ServerError("server not listening after 10 s: %s" % tail(errs))
                time.sleep(0.001)
            break
        except ServerError as e:
            kill(server)
            server = None
            if attempt + 1 == attempts:
                res.problems.append(str(e))
                return res
    # Ready: run the client.
    with open(infile, "rb") as inp, open(errc, "wb") as err:
        t0 = time.perf_counter()
        client = spawn(client_argv(info), stdin=inp, stdout=subprocess.DEVNULL, stderr=err)
    # The server has nothing to send: end its stdin (sockit, like nc, keeps a
    # connection's sending side open until its stdin ends).
    if server.stdin is not None:
        try:
            server.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + timeout

    grace = {}

    def stop_early(done):
        # A client that failed leaves a server waiting for a connection or for
        # EOF: give it 2 s to notice, not the whole timeout.
        if client.pid in done and done[client.pid][0] != 0 and server.pid not in done:
            grace.setdefault("until", time.monotonic() + 2)
            return time.monotonic() > grace["until"]
        return False

    done = wait_exits([server, client], deadline, stop_early)
    if server.pid in done:
        res.server_rc, t_end = done[server.pid]
        res.seconds = t_end - t0
    if server.pid in done and client.pid not in done:
        # The server is gone; the client should follow promptly.
        done.update(wait_exits([client], time.monotonic() + min(10, timeout), None))
    if client.pid in done:
        res.client_rc = done[client.pid][0]
    res.server_cpu = CPU.get(server.pid)
    res.client_cpu = CPU.get(client.pid)

    if server.pid not in done:
        if grace:
            res.problems.append("server still running 2 s after the client failed; killed")
        else:
            res.problems.append("server did not exit within %.0f s; killed" % timeout)
    elif res.server_rc != 0:
        res.problems.append("server exit %d: %s" % (res.server_rc, tail(errs)))
    if client.pid not in done:
        if server.pid in done:
            res.problems.append("client still running 10 s after the server exited; killed")
        else:
            res.problems.append("client did not exit within %.0f s; killed" % timeout)
    elif res.client_rc != 0:
        res.problems.append("client exit %d: %s" % (res.client_rc, tail(errc)))
    kill(server)
    kill(client)

    if expect_bytes is not None and server.pid in done:
        with open(errs, "rb") as f:
            m = STATS_RE.search(f.read())
        if m:
            res.server_bytes = int(m.group(2))
            if res.server_bytes != expect_bytes:
                res.problems.append("server received %d of %d bytes" % (res.server_bytes, expect_bytes))
        else:
            res.problems.append("no byte count on the server's stderr: %s" % tail(errs))
    return res


# --------------------------------------------------------------------------
# Tools.


class Tool:
    def __init__(self, name, exe, server, client, ready, count_bytes=False):
        self.name = name
        self.exe = exe
        self.server = server
        self.client = client
        self.ready = ready
        self.count_bytes = count_bytes


def relay_tools(sockit):
    return [
        Tool(
            "sockit",
            sockit,
            lambda port: [sockit, "-v", "listen", "127.0.0.1:0"],
            lambda info: [sockit, "connect", "127.0.0.1:%d" % info["port"]],
            lambda port: sockit_ready(),
            count_bytes=True,
        ),
        Tool(
            "nc.openbsd",
            "nc.openbsd",
            lambda port: ["nc.openbsd", "-l", "127.0.0.1", str(port)],
            lambda info: ["nc.openbsd", "-N", "127.0.0.1", str(info["port"])],
            proc_listen_ready,
        ),
        Tool(
            "ncat",
            "ncat",
            lambda port: ["ncat", "-l", "127.0.0.1", str(port)],
            lambda info: ["ncat", "--send-only", "127.0.0.1", str(info["port"])],
            proc_listen_ready,
        ),
        Tool(
            "socat",
            "socat",
            lambda port: ["socat", "-u", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port, "STDOUT"],
            lambda info: ["socat", "-u", "STDIN", "TCP:127.0.0.1:%d" % info["port"]],
            proc_listen_ready,
        ),
    ]


def run_tool(tool, infile, workdir, tag, timeout, nbytes):
    # The server's readiness check depends on the port it was given; wrap so
    # transfer() can pick a fresh port per attempt.
    state = {}

    def server_argv(port):
        state["ready"] = tool.ready(port)
        return tool.server(port)

    def ready(p, errpath):
        return state["ready"](p, errpath)

    return transfer(
        server_argv=server_argv,
        ready=ready,
        client_argv=tool.client,
        infile=infile,
        outfile=None,
        workdir=workdir,
        tag=tag,
        timeout=timeout,
        expect_bytes=nbytes if tool.count_bytes else None,
    )


# --------------------------------------------------------------------------
# Context.


def cmd_out(argv, timeout=5):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=timeout, text=True)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def dpkg_version(pkg):
    v = cmd_out(["dpkg-query", "-W", "-f=${Version}", pkg])
    return v or "?"


def fs_type(path):
    return cmd_out(["stat", "-f", "-c", "%T", path]) or "?"


def read_first(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def print_context(args, sockit, workdir):
    print("== machine")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = "?"
    print("  nproc          %s (cpu_count %s)" % (affinity, os.cpu_count()))
    print("  cpu            %s" % read_first("/proc/cpuinfo", "model name"))
    print("  kernel         %s %s" % (platform.release(), platform.machine()))
    print("  memory         %s" % read_first("/proc/meminfo", "MemTotal"))
    try:
        print("  loadavg        %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    except OSError:
        pass
    try:
        print("  lo mtu         %s" % open("/sys/class/net/lo/mtu").read().strip())
    except OSError:
        pass
    print("  python         %s" % platform.python_version())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rev = cmd_out(["git", "-C", root, "describe", "--always", "--dirty"])
    print("  sockit         %s (git %s) %s" % (cmd_out([sockit, "--version"]) or "?", rev or "?", sockit))
    print("  nc.openbsd     netcat-openbsd %s" % dpkg_version("netcat-openbsd"))
    print("  ncat           %s (deb %s)" % (cmd_out(["ncat", "--version"]).replace("Ncat: ", "") or "?", dpkg_version("ncat")))
    socat_v = [l for l in cmd_out(["socat", "-V"]).splitlines() if l.startswith("socat version")]
    print("  socat          %s (deb %s)" % (socat_v[0] if socat_v else "?", dpkg_version("socat")))
    print("  data dir       %s (%s)" % (workdir, fs_type(workdir)))
    print("  size           %d MiB (seqpacket %d MiB), %d run(s) + %d warm-up, timeout %.0f s per transfer"
          % (args.size_mib, args.seqpacket_mib, args.runs, args.warmup, args.timeout))
    if args.sockit_before:
        print("  sockit before  %s %s" % (cmd_out([args.sockit_before, "--version"]) or "?", args.sockit_before))
    print()


# --------------------------------------------------------------------------
# Sections.


def make_input(path, size_mib):
    t = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MIB))
    return time.monotonic() - t


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fmt_rate(x):
    return "%.3f" % x if x is not None else "-"


def relay_section(args, sockit, infile, workdir, nbytes):
    print("== relay throughput: %d MiB file -> client -> 127.0.0.1 TCP -> server > /dev/null" % args.size_mib)
    print("   timed from client start to server exit; servers' stdin: a pipe closed once the client starts")
    tools = []
    for t in relay_tools(sockit):
        if args.tools and t.name not in args.tools:
            continue
        if shutil.which(t.exe) is None:
            print("   SKIP %s: not installed (%s)" % (t.name, t.exe))
            continue
        tools.append(t)
    if not tools:
        print("   no tools to run")
        return False
    print("   tools: %s" % ", ".join(t.name for t in tools))
    results = {t.name: [] for t in tools}
    failures = []
    total = args.warmup + args.runs
    for r in range(total):
        warm = r < args.warmup
        k = r % len(tools)
        order = tools[k:] + tools[:k]
        cells = []
        for t in order:
            tag = "relay-%s-%d" % (t.name, r)
            res = run_tool(t, infile, workdir, tag, args.timeout, nbytes)
            if res.ok:
                rate = res.rate(nbytes)
                cells.append("%s %.3f" % (t.name, rate))
                if not warm:
                    results[t.name].append(rate)
            else:
                cells.append("%s FAILED" % t.name)
                failures.append("%s %s: %s" % ("warm-up" if warm else "run %d" % (r - args.warmup + 1),
                                                t.name, "; ".join(res.problems)))
        label = "warm-up" if warm else "run %d/%d" % (r - args.warmup + 1, args.runs)
        print("   %-9s GiB/s: %s" % (label, ", ".join(cells)), flush=True)
    print()
    base = results.get("nc.openbsd")
    base_med = statistics.median(base) if base else None
    hdr = "%-12s %6s %12s %8s %8s %10s %14s" % ("tool", "ok", "median GiB/s", "min", "max", "median s", "vs nc.openbsd")
    print("   " + hdr)
    print("   " + "-" * len(hdr))
    for t in tools:
        rs = results[t.name]
        if rs:
            med = statistics.median(rs)
            ratio = "%.2fx" % (med / base_med) if base_med else "n/a"
            print("   %-12s %6s %12.3f %8.3f %8.3f %10.3f %14s" % (
                t.name, "%d/%d" % (len(rs), args.runs), med, min(rs), max(rs), nbytes / GIB / med, ratio))
        else:
            print("   %-12s %6s %12s %8s %8s %10s %14s" % (t.name, "0/%d" % args.runs, "-", "-", "-", "-", "-"))
    if "sockit" in results:
        print("   (sockit runs also check the server's -v byte count equals the file size)")
    if failures:
        print()
        print("   FAILURES (%d):" % len(failures))
        for f in failures:
            print("   - " + f)
    print(flush=True)
    return not failures


def integrity_section(args, sockit, infile, workdir, nbytes):
    print("== integrity: %d MiB, sockit connect -> sockit listen > FILE, SHA-256 compared" % args.size_mib)
    if not os.access(sockit, os.X_OK):
        print("   SKIP: %s not found (build with cargo build --release)" % sockit)
        return False
    t = time.monotonic()
    want = sha256_file(infile)
    print("   input sha256 %s (%.1f s to hash)" % (want, time.monotonic() - t))
    # Unix socket under /tmp: short path, private dir.
    sockdir = tempfile.mkdtemp(prefix="sockit-bench-", dir="/tmp")
    sockpath = os.path.join(sockdir, "s.sock")
    cases = [
        ("tcp", "TCP 127.0.0.1; listener stdin: pipe closed once the client starts",
         lambda port: [sockit, "-v", "listen", "127.0.0.1:0"], sockit_ready(),
         lambda i: [sockit, "connect", "127.0.0.1:%d" % i["port"]], False),
        ("unix", "Unix stream socket in a private /tmp dir; listener stdin: pipe closed once the client starts",
         lambda port: [sockit, "-v", "listen", "unix:" + sockpath], sockit_ready(unix=True),
         lambda i: [sockit, "connect", "unix:" + i["path"]], False),
        ("tls", "TLS over TCP 127.0.0.1, --tls-self-signed, client pins the SHA-256; listener stdin: pipe closed once the client starts",
         lambda port: [sockit, "-v", "listen", "--tls-self-signed", "127.0.0.1:0"], sockit_ready(tls=True),
         lambda i: [sockit, "connect", "--tls", "--pin-sha256", i["fp"], "127.0.0.1:%d" % i["port"]], False),
        ("tcp-stdin-eof", "TCP 127.0.0.1; listener stdin </dev/null (at EOF from the start, as under `&` in a script)",
         lambda port: [sockit, "-v", "listen", "127.0.0.1:0"], sockit_ready(),
         lambda i: [sockit, "connect", "127.0.0.1:%d" % i["port"]], True),
    ]
    if args.skip_stdin_eof:
        cases = cases[:3]
    rows = []
    all_ok = True
    try:
        for name, desc, sargv, ready, cargv, eof in cases:
            out = os.path.join(workdir, "out-%s.bin" % name)
            res = transfer(server_argv=sargv, ready=ready, client_argv=cargv, infile=infile, outfile=out,
                           workdir=workdir, tag="integrity-" + name, timeout=args.timeout,
                           server_stdin_eof=eof)
            size = os.path.getsize(out) if os.path.exists(out) else 0
            got = sha256_file(out) if os.path.exists(out) else "-" * 64
            try:
                os.unlink(out)
            except OSError:
                pass
            match = got == want
            verdict = "OK" if match else "MISMATCH"
            if not res.ok:
                verdict += ", EXIT/WAIT PROBLEM"
                all_ok = False
            if not match:
                all_ok = False
            rows.append((name, desc, size, got, res, verdict))
            print("   %-14s done: %s" % (name, verdict), flush=True)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    print()
    hdr = "%-14s %-64s %12s %7s %7s %8s %7s  %s" % (
        "case", "sha256", "bytes", "srv rc", "cli rc", "seconds", "GiB/s", "result")
    print("   " + hdr)
    print("   " + "-" * len(hdr))
    print("   %-14s %-64s %12d %7s %7s %8s %7s  %s" % ("input", want, nbytes, "", "", "", "", ""))
    for name, desc, size, got, res, verdict in rows:
        # A rate is only meaningful when the whole file arrived.
        secs = res.seconds
        print("   %-14s %-64s %12d %7s %7s %8s %7s  %s" % (
            name, got, size,
            "-" if res.server_rc is None else res.server_rc,
            "-" if res.client_rc is None else res.client_rc,
            "%.3f" % secs if secs is not None else "-",
            fmt_rate(res.rate(nbytes)) if secs and got == want else "-",
            verdict))
    print()
    for name, desc, size, got, res, verdict in rows:
        print("   %-14s %s" % (name, desc))
        for p in res.problems:
            print("   %-14s   problem: %s" % ("", p))
    print("   (seconds: client start to server exit; GiB/s only where the output matches; output file on %s)"
          % fs_type(workdir))
    print(flush=True)
    return all_ok


LISTEN_SEQPACKET_RE = re.compile(rb"listening on (\S+) \(unix-seqpacket\)")


def sockit_seqpacket_ready(_p, errpath):
    with open(errpath, "rb") as f:
        m = LISTEN_SEQPACKET_RE.search(f.read())
    return {"path": m.group(1).decode()} if m else None


def unix_listen_ready(path):
    """Ready once /proc/net/unix shows `path` listening (__SO_ACCEPTCON) on a
    socket the server owns: between bind(2) and listen(2) a connect fails."""

    def ready(p, _errpath):
        try:
            with open("/proc/net/unix") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000:
                        if owns_socket(p.pid, parts[6]):
                            return {"path": path}
        except OSError:
            pass
        return None

    return ready


def seqpacket_tools(sockit, before):
    """(name, exe, server argv(path), client argv(path), ready(path), peer name)."""
    def sk(binary, extra):
        return (lambda path: [binary, "-v", "listen", "unix-seqpacket:" + path],
                lambda path: [binary, "connect"] + extra + ["unix-seqpacket:" + path],
                lambda path: sockit_seqpacket_ready)

    def so(extra):
        return (lambda path: ["socat", "-u"] + extra + ["UNIX-LISTEN:%s,socktype=5" % path, "STDOUT"],
                lambda path: ["socat", "-u"] + extra + ["STDIN", "UNIX-CONNECT:%s,socktype=5" % path],
                unix_listen_ready)

    tools = [
        ("sockit lines", sockit) + sk(sockit, []) + ("socat",),
        ("sockit -d 65507", sockit) + sk(sockit, ["--datagram-size", "65507"]) + ("socat -b65507",),
        ("socat", "socat") + so([]) + (None,),
        ("socat -b65507", "socat") + so(["-b65507"]) + (None,),
    ]
    if before:
        tools[2:2] = [
            ("before lines", before) + sk(before, []) + ("socat",),
            ("before -d 65507", before) + sk(before, ["--datagram-size", "65507"]) + ("socat -b65507",),
        ]
    return tools


def seqpacket_section(args, sockit, workdir):
    size = args.seqpacket_mib * MIB
    print("== unix seqpacket: %d MiB of random bytes, connect < file -> listen > FILE, SHA-256 compared"
          % args.seqpacket_mib)
    print("   sockit lines: a message per line (random bytes: a newline every 256 bytes on average);")
    print("   sockit -d 65507: --datagram-size 65507, a message per 65507 bytes;")
    print("   socat -u STDIN UNIX-CONNECT:P,socktype=5: a message per read(2) of its 8192-byte buffer")
    print("   (boundaries where the reads fall, not at lines); socat -b65507: 65507-byte reads")
    print("   first round: output to a file, SHA-256 compared (also the warm-up); timed rounds: > /dev/null")
    print("   timed from client start to server exit; MB = 10^6 bytes; cpu: user+system ms per MiB")
    infile = os.path.join(workdir, "seqpacket-input.bin")
    make_input(infile, args.seqpacket_mib)
    want = sha256_file(infile)
    with open(infile, "rb") as f:
        data = f.read()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    del data
    print("   input sha256 %s, %d lines" % (want, lines))
    tools = []
    for t in seqpacket_tools(sockit, args.sockit_before):
        if shutil.which(t[1]) is None and not os.access(t[1], os.X_OK):
            print("   SKIP %s: not installed (%s)" % (t[0], t[1]))
            continue
        tools.append(t)
    sockdir = tempfile.mkdtemp(prefix="sockit-bench-", dir="/tmp")
    results = {t[0]: [] for t in tools}
    failures = []
    serial = [0]
    try:
        # Round 0 writes to a file whose SHA-256 must equal the input's (it is
        # also the warm-up); the timed rounds write to /dev/null, where the
        # page cache costs nothing, and sockit's -v byte count is checked.
        total = 1 + args.runs
        for r in range(total):
            warm = r == 0
            k = r % len(tools)
            cells = []
            for name, _exe, server, client, ready, _peer in tools[k:] + tools[:k]:
                out = os.path.join(workdir, "seqpacket-out.bin") if warm else None
                state = {}

                def server_argv(_port, server=server, ready=ready):
                    serial[0] += 1
                    state["path"] = os.path.join(sockdir, "s%d.sock" % serial[0])
                    state["ready"] = ready(state["path"])
                    return server(state["path"])

                res = transfer(server_argv=server_argv, ready=lambda p, e: state["ready"](p, e),
                               client_argv=lambda info, client=client: client(info["path"]),
                               infile=infile, outfile=out, workdir=workdir,
                               tag="seqpacket-%d" % serial[0], timeout=args.timeout,
                               expect_bytes=None if warm or not name.startswith(("sockit", "before")) else size)
                if warm:
                    got = sha256_file(out) if os.path.exists(out) else None
                    try:
                        os.unlink(out)
                    except OSError:
                        pass
                    if got != want:
                        res.problems.append("output sha256 %s differs from the input's" % got)
                if res.ok:
                    mbs = size / 1e6 / res.seconds
                    cells.append("%s %.0f" % (name, mbs))
                    if not warm:
                        results[name].append((mbs, res.server_cpu, res.client_cpu))
                else:
                    cells.append("%s FAILED" % name)
                    failures.append("%s %s: %s" % ("sha-256 round" if warm else "run %d" % r,
                                                    name, "; ".join(res.problems)))
            label = "sha-256" if warm else "run %d/%d" % (r, args.runs)
            print("   %-9s MB/s: %s" % (label, ", ".join(cells)), flush=True)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    print()
    med = {n: statistics.median(x[0] for x in rs) for n, rs in results.items() if rs}
    hdr = "%-16s %5s %11s %7s %7s %11s %11s %10s %16s" % (
        "tool", "ok", "median MB/s", "min", "max", "srv cpu/MiB", "cli cpu/MiB", "Mmsg/s", "vs peer")
    print("   " + hdr)
    print("   " + "-" * len(hdr))
    for name, _exe, _s, _c, _r, peer in tools:
        rs = results[name]
        if not rs:
            print("   %-16s %5s" % (name, "0/%d" % args.runs))
            continue
        cpu = lambda i: statistics.median(x[i] for x in rs if x[i] is not None) * 1000 / args.seqpacket_mib \
            if any(x[i] is not None for x in rs) else float("nan")
        if "lines" in name:
            msgs = lines
        else:
            block = 65507 if "65507" in name else 8192
            msgs = -(-size // block)
        mmsg = msgs / (size / 1e6 / med[name]) / 1e6
        ratio = "%.2fx %s" % (med[name] / med[peer], peer) if peer in med else "-"
        print("   %-16s %5s %11.0f %7.0f %7.0f %10.2fms %10.2fms %10.3f %16s" % (
            name, "%d/%d" % (len(rs), args.runs), med[name], min(x[0] for x in rs), max(x[0] for x in rs),
            cpu(1), cpu(2), mmsg, ratio))
    for a, b in (("sockit lines", "before lines"), ("sockit -d 65507", "before -d 65507")):
        if a in med and b in med:
            print("   %s vs %s: %.2fx" % (a, b, med[a] / med[b]))
    print("   (every tool's output matched the input's SHA-256; Mmsg/s: millions of messages per second;")
    print("    socat's messages are 8192 or 65507 bytes: the line mode's peer moves 32x fewer messages)")
    if failures:
        print()
        print("   FAILURES (%d):" % len(failures))
        for f in failures:
            print("   - " + f)
    print(flush=True)
    return not failures


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Relay throughput of sockit vs nc.openbsd, ncat and socat over loopback TCP, unix seqpacket vs socat, "
                    "and SHA-256 integrity of sockit over TCP, Unix and TLS.",
    )
    ap.add_argument("--size-mib", type=int, default=1024, help="bytes per transfer, in MiB (default 1024)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds first (default 1)")
    ap.add_argument("--only", choices=["relay", "integrity", "seqpacket"], help="run one section only")
    ap.add_argument("--seqpacket-mib", type=int, default=256,
                    help="unix seqpacket section: bytes per transfer, in MiB (default 256)")
    ap.add_argument("--sockit-before", default=None,
                    help="unix seqpacket section: another sockit binary (e.g. an older build) timed in the same rounds")
    ap.add_argument("--tools", help="comma-separated subset of sockit,nc.openbsd,ncat,socat for the relay")
    ap.add_argument("--timeout", type=float, help="seconds allowed per transfer (default 30 + size/20 MiB/s)")
    ap.add_argument("--tmpdir", help="where the random input and outputs go (default: system temp dir)")
    ap.add_argument("--skip-stdin-eof", action="store_true",
                    help="integrity: skip the case with the listener's stdin at EOF")
    ap.add_argument("--sockit", default=None, help="sockit binary (default: target/release/sockit)")
    args = ap.parse_args()
    if args.size_mib < 1 or args.runs < 1 or args.warmup < 0:
        ap.error("--size-mib and --runs must be >= 1, --warmup >= 0")
    if args.timeout is None:
        args.timeout = 30 + args.size_mib / 20
    if args.tools:
        args.tools = set(x.strip() for x in args.tools.split(",") if x.strip())
        unknown = args.tools - {"sockit", "nc.openbsd", "ncat", "socat"}
        if unknown:
            ap.error("unknown tool(s): %s" % ", ".join(sorted(unknown)))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sockit = os.path.abspath(args.sockit or os.path.join(root, "target", "release", "sockit"))
    if args.sockit_before:
        args.sockit_before = os.path.abspath(args.sockit_before)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workdir = tempfile.mkdtemp(prefix="sockit-bench-", dir=args.tmpdir)
    ok = True
    try:
        print_context(args, sockit, workdir)
        infile = os.path.join(workdir, "input.bin")
        nbytes = args.size_mib * MIB
        if args.only != "seqpacket":
            secs = make_input(infile, args.size_mib)
            print("== input: %s, %d bytes of os.urandom (%.1f s to write)" % (infile, nbytes, secs))
            print(flush=True)
        if args.only in (None, "relay"):
            if not os.access(sockit, os.X_OK):
                print("   NOTE: %s not found; sockit is skipped" % sockit)
            ok &= relay_section(args, sockit, infile, workdir, nbytes)
        if args.only in (None, "integrity"):
            ok &= integrity_section(args, sockit, infile, workdir, nbytes)
        if args.only in (None, "seqpacket"):
            ok &= seqpacket_section(args, sockit, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        ok = False
        return 130
    finally:
        kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print("== result: %s" % ("all checks passed" if ok else "FAILURES above (exit 1)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
