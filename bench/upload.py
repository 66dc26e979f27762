#!/usr/bin/env python3
"""sockit http uploads next to curl, in the same run, to a private nginx (WebDAV PUT).

Measures, interleaved (sockit, curl, sockit, curl, ...), several runs each:
  1. -T FILE: a 1 GiB file with Content-Length,
  2. -T - < FILE: the same bytes from stdin, sent chunked (Transfer-Encoding: chunked),
  3. cat FILE | -T -: from a pipe, chunked,
  4. --limit-rate: 8 MiB at 4M/s with -T FILE (the pace: both should take ~2 s).
Prints medians, the ratio of rates (above 1.0: sockit faster) and each
client's CPU time (user + system, from wait4's rusage) per GiB. nginx and its
files live in /dev/shm, so the disk is not the bottleneck; nginx is the same
for both clients.

Needs nginx and curl (Debian: apt-get install nginx curl) and
target/release/sockit (built with cargo build --release when missing).
Python standard library only.

  python3 bench/upload.py               full run (1024 MiB, 5 runs)
  python3 bench/upload.py --quick       256 MiB, 3 runs
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKIT = os.path.join(ROOT, "target", "release", "sockit")

NGINX_CONF = """\
{user}
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location /put/ {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def which(prog):
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]:
        p = os.path.join(d, prog)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"bench/upload.py: {prog} is not installed (apt-get install {prog})")


class Nginx:
    def __init__(self, d):
        os.makedirs(f"{d}/www/put", exist_ok=True)
        os.makedirs(f"{d}/tmp", exist_ok=True)
        nginx = which("nginx")
        for _ in range(5):
            self.port = free_port()
            with open(f"{d}/nginx.conf", "w") as f:
                f.write(NGINX_CONF.format(d=d, port=self.port,
                                          user="user root;" if os.geteuid() == 0 else ""))
            self.proc = subprocess.Popen(
                [nginx, "-p", d, "-c", f"{d}/nginx.conf", "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            self.stop()
        sys.exit("bench/upload.py: nginx did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def timed(cmd, stdin_path, pipe):
    """Runs cmd with stdin from stdin_path (through `cat` with pipe), or
    /dev/null: wall s, CPU s."""
    with open(stdin_path or os.devnull, "rb") as inp, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        cat = None
        if pipe:
            cat = subprocess.Popen(["cat"], stdin=inp, stdout=subprocess.PIPE)
            inp = cat.stdout
        p = subprocess.Popen(cmd, stdin=inp, stdout=subprocess.DEVNULL, stderr=err)
        if cat:
            cat.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        if cat:
            cat.wait()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"bench/upload.py: {cmd[0]} failed ({code}): {err.read().decode()[:500]}")
    return dt, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="upload size (default 1024)")
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument("--quick", action="store_true", help="256 MiB and 3 runs")
    ap.add_argument("--sockit", metavar="BIN", help="the sockit binary (default target/release/sockit)")
    args = ap.parse_args()
    global SOCKIT
    if args.sockit:
        SOCKIT = os.path.abspath(args.sockit)
    if args.quick:
        args.size_mib, args.runs = 256, 3
    if not os.path.exists(SOCKIT):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    curl = which("curl")
    curl_version = subprocess.run([curl, "--version"], capture_output=True,
                                  text=True).stdout.split("\n")[0]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="sockit-bench-upload-", dir=base) as d:
        src = f"{d}/src.bin"
        block = os.urandom(1 << 20)
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(block)
        small = f"{d}/small.bin"
        with open(small, "wb") as f:
            for _ in range(8):
                f.write(block)
        ng = Nginx(d)
        try:
            gib = args.size_mib / 1024
            cases = [
                (f"{args.size_mib} MiB -T FILE (Content-Length)", gib,
                 ["-sS", "-f", "-T", src, ng.url("/put/{who}")], None, False),
                (f"{args.size_mib} MiB -T - < FILE (chunked)", gib,
                 ["-sS", "-f", "-T", "-", ng.url("/put/{who}")], src, False),
                (f"{args.size_mib} MiB cat FILE | -T - (chunked)", gib,
                 ["-sS", "-f", "-T", "-", ng.url("/put/{who}")], src, True),
                ("8 MiB -T FILE --limit-rate 4M", 8 / 1024,
                 ["-sS", "-f", "--limit-rate", "4M", "-T", small, ng.url("/put/{who}")],
                 None, False),
            ]
            for name, size, argv, stdin, pipe in cases:
                got = {"sockit": [], "curl": []}
                for _ in range(args.runs):
                    for who, prog in (("sockit", [SOCKIT, "http"]), ("curl", [curl])):
                        a = [x.replace("{who}", who) for x in argv]
                        got[who].append(timed(prog + a, stdin, pipe))
                        os.unlink(f"{d}/www/put/{who}")
                rows.append((name, size, got))
        finally:
            ng.stop()

    print(f"sockit http uploads vs {curl_version}")
    print(f"nginx (WebDAV PUT into /dev/shm) on loopback, {os.cpu_count()} CPUs; "
          f"medians of {args.runs} interleaved runs\n")
    w = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{w}}  {'sockit':>11}  {'curl':>11}  {'ratio':>5}  "
          f"CPU s/GiB sockit / curl")
    for name, size, got in rows:
        med = {k: [statistics.median(x[i] for x in v) for i in range(2)] for k, v in got.items()}
        s, c = med["sockit"], med["curl"]
        rate = lambda t: f"{size * 1024 / t:,.0f} MiB/s" if t else "-"
        print(f"{name:<{w}}  {rate(s[0]):>11}  {rate(c[0]):>11}  {c[0] / s[0]:>5.2f}  "
              f"{s[1] / size:.3f} / {c[1] / size:.3f}")
    print("\nratio: curl's time / sockit's time (above 1.00: sockit is faster)")


if __name__ == "__main__":
    main()
