#!/usr/bin/env python3
"""sockit http next to curl, in the same run, against a private nginx on loopback.

Measures, interleaved (sockit, curl, sockit, curl, ...), several runs each:
  1. a 1 GiB download to /dev/null over HTTP,
  2. the same over HTTPS (self-signed certificate, -k for both),
  3. 1000 small GETs in one invocation over keep-alive (the same 1000 URLs on
     both command lines),
  4. one small GET, whole process start to exit (hyperfine if installed,
     else a loop here).
Prints medians and the ratio sockit/curl of rates (above 1.0: sockit faster),
and each program's CPU time (user + system, from wait4's rusage) per run, per
GiB for the downloads.

Needs nginx, curl and openssl on PATH (Debian: apt-get install nginx curl openssl)
and target/release/sockit (built with cargo build --release when missing).
Python standard library only.

  python3 bench/http.py                 full run
  python3 bench/http.py --quick         256 MiB, 3 runs (a smoke test)
  python3 bench/http.py --baseline OLD  also an older sockit binary, interleaved
  python3 bench/http.py --cases download,gets   only these measurements
                                        (download, https, gets, single)
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKIT = os.path.join(ROOT, "target", "release", "sockit")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find(prog):
    path = shutil.which(prog) or (
        "/usr/sbin/" + prog if os.path.exists("/usr/sbin/" + prog) else None
    )
    if not path:
        sys.exit(f"bench/http.py: {prog} is not installed (apt-get install {prog})")
    return path


NGINX_CONF = """\
{user}
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {d}/www;
    }}
}}
"""


class Nginx:
    def __init__(self, d, size_mib):
        self.d = d
        os.makedirs(f"{d}/www", exist_ok=True)
        os.makedirs(f"{d}/tmp", exist_ok=True)
        block = os.urandom(1 << 20)
        with open(f"{d}/www/big.bin", "wb") as f:
            for _ in range(size_mib):
                f.write(block)
        self.size = size_mib << 20
        with open(f"{d}/www/small.txt", "w") as f:
            f.write("a small response body, like an API answer\n")
        subprocess.run(
            [find("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{d}/key.pem",
             "-out", f"{d}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        nginx = find("nginx")
        for _ in range(5):
            self.port, self.tls_port = free_port(), free_port()
            with open(f"{d}/nginx.conf", "w") as f:
                f.write(NGINX_CONF.format(
                    d=d, port=self.port, tls_port=self.tls_port,
                    user="user root;" if os.geteuid() == 0 else ""))
            self.proc = subprocess.Popen(
                [nginx, "-p", d, "-c", f"{d}/nginx.conf", "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    for p in (self.port, self.tls_port):
                        socket.create_connection(("127.0.0.1", p), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.stop()
            if "Address already in use" not in err:
                sys.exit(f"bench/http.py: nginx did not start: {err}")
        sys.exit("bench/http.py: no free port for nginx")

    def url(self, path, tls=False):
        if tls:
            return f"https://127.0.0.1:{self.tls_port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def timed(cmd):
    """Runs cmd; returns (wall seconds, CPU seconds: user + system)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"bench/http.py: {cmd[0]} failed ({p.returncode}): "
                     f"{err.read().decode()[:500]}")
    return dt, ru.ru_utime + ru.ru_stime


def interleaved(cmds, runs):
    """cmds: {name: argv}. Returns ({name: [seconds...]}, {name: [CPU seconds...]}),
    run in turns."""
    times = {k: [] for k in cmds}
    cpu = {k: [] for k in cmds}
    for _ in range(runs):
        for k, c in cmds.items():
            wall, used = timed(c)
            times[k].append(wall)
            cpu[k].append(used)
    return times, cpu


def single_get(url, runs, baseline):
    sockit = [SOCKIT, "http", "-s", "-o", "/dev/null", url]
    curl = ["curl", "-s", "-o", "/dev/null", url]
    hf = shutil.which("hyperfine")
    if hf and not baseline:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [hf, "-N", "--warmup", "20", "--runs", str(runs), "--export-json",
                 out.name, " ".join(sockit), " ".join(curl)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            data = json.load(open(out.name))["results"]
        return ({"sockit": data[0]["times"], "curl": data[1]["times"]}, None), "hyperfine -N"
    cmds = {"sockit": sockit, "curl": curl}
    if baseline:
        cmds["baseline"] = [baseline, *sockit[1:]]
    return interleaved(cmds, runs), "python loop"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="download size (default 1024)")
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument("--gets", type=int, default=1000, help="small GETs per invocation (default 1000)")
    ap.add_argument("--single-runs", type=int, default=200, help="runs of the single GET (default 200)")
    ap.add_argument("--quick", action="store_true", help="256 MiB and 3 runs")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--sockit", metavar="BIN", help="the sockit binary (default target/release/sockit)")
    ap.add_argument("--baseline", metavar="BIN", help="an older sockit binary to run alongside")
    ap.add_argument("--cases", default="download,https,gets,single",
                    help="comma-separated subset of download,https,gets,single")
    args = ap.parse_args()
    global SOCKIT
    if args.sockit:
        SOCKIT = os.path.abspath(args.sockit)
    cases = set(args.cases.split(","))
    if args.quick:
        args.size_mib, args.runs, args.single_runs = 256, 3, 50
    if not os.path.exists(SOCKIT):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    find("curl")
    curl_version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]

    results = []
    with tempfile.TemporaryDirectory(prefix="sockit-bench-http-") as d:
        ng = Nginx(d, args.size_mib)
        try:
            gib = ng.size / (1 << 30)

            def three(sockit_argv, curl_argv):
                cmds = {"sockit": [SOCKIT, *sockit_argv], "curl": ["curl", *curl_argv]}
                if args.baseline:
                    cmds["baseline"] = [args.baseline, *sockit_argv]
                return interleaved(cmds, args.runs)

            for tls in (False, True):
                if ("https" if tls else "download") not in cases:
                    continue
                url = ng.url("/big.bin", tls)
                k = ["-k"] if tls else []
                t = three(["http", "-s", "-o", "/dev/null", *k, url],
                          ["-s", "-o", "/dev/null", *k, url])
                results.append((f"{args.size_mib} MiB download, {'HTTPS' if tls else 'HTTP'}",
                                t, lambda s: f"{gib / s:.2f} GiB/s", lambda s: gib / s,
                                gib, "s/GiB"))
            if "gets" in cases:
                urls = [ng.url("/small.txt")] * args.gets
                t = three(["http", "-s", *urls], ["-s", *urls])
                n = args.gets
                results.append((f"{n} small GETs, keep-alive, one process", t,
                                lambda s: f"{n / s:,.0f} req/s", lambda s: n / s, 1, "s/run"))
            if "single" in cases:
                t, how = single_get(ng.url("/small.txt"), args.single_runs, args.baseline)
                results.append((f"single small GET, whole process ({how})", t,
                                lambda s: f"{s * 1000:.2f} ms", lambda s: 1 / s, 1, "s/run"))
        finally:
            ng.stop()

    print(f"sockit http vs {curl_version}")
    print(f"nginx on loopback, {os.cpu_count()} CPUs; medians of {args.runs} interleaved runs "
          f"({args.single_runs} for the single GET)")
    if args.baseline:
        print(f"baseline: {args.baseline}")
    print()
    w = max(len(r[0]) for r in results)
    base = args.baseline is not None
    head = f"{'measurement':<{w}}  {'sockit':>14}  {'curl':>14}  {'ratio':>6}"
    if base:
        head += f"  {'baseline':>14}  {'ratio':>6}"
    print(head + "  CPU: sockit / curl" + (" / baseline" if base else ""))
    out = []
    for name, (t, cpu), fmt, rate, per, unit in results:
        ms, mc = statistics.median(t["sockit"]), statistics.median(t["curl"])
        ratio = rate(ms) / rate(mc)
        line = f"{name:<{w}}  {fmt(ms):>14}  {fmt(mc):>14}  {ratio:>6.2f}"
        row = {"measurement": name, "sockit_median_s": ms, "curl_median_s": mc,
               "sockit": fmt(ms), "curl": fmt(mc), "ratio": ratio}
        if base:
            mb = statistics.median(t["baseline"])
            line += f"  {fmt(mb):>14}  {rate(mb) / rate(mc):>6.2f}"
            row.update(baseline_median_s=mb, baseline_ratio=rate(mb) / rate(mc))
        if cpu:
            used = {k: statistics.median(v) / per for k, v in cpu.items()}
            line += "  " + " / ".join(f"{used[k]:.3f}" for k in cpu) + f" {unit}"
            row["cpu_" + unit.replace("/", "_per_")] = used
        print(line)
        out.append(row)
    print("\nratio: sockit's rate / curl's rate (above 1.00: sockit is faster); "
          "CPU: user + system, median")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
