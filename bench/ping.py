#!/usr/bin/env python3
"""ICMP echo benchmark: `sockit ping` next to iputils `ping` on loopback.

Both tools run `ping 127.0.0.1 -c COUNT -i INTERVAL` (default 100 requests, 10 ms
apart) several times, interleaved (round 1 of each tool, then round 2 ..., the
order alternating each round) so machine noise hits both alike. Every reply line
is parsed; the table shows per-tool loss and the median RTT over all replies, and
the ratio of sockit's median to iputils'. The target: loss 0 and a ratio within
0.8-1.2.

Only 127.0.0.1 is pinged. Intervals below 0.2 s need root (both tools enforce
it). iputils-ping is installed with apt-get when missing (needs root). Every
child process is bounded by a timeout.

Standard library only; Linux only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

TARGET = "127.0.0.1"
REPLY = re.compile(r"icmp_seq=(\d+)(?: ttl=\d+)? time=([0-9.]+) ms")
TOTALS = re.compile(r"(\d+) packets transmitted, (\d+) received")


def root_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_iputils():
    """Returns the path of iputils ping, installing iputils-ping if needed."""
    path = shutil.which("ping")
    if path and "iputils" in version_of([path, "-V"]):
        return path
    print("bench/ping.py: installing iputils-ping", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "iputils-ping"],
        check=True,
        env=env,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    path = shutil.which("ping")
    if not path:
        sys.exit("bench/ping.py: iputils ping is still missing after apt-get")
    return path


def version_of(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def ensure_sockit(path):
    if path:
        return path
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(root_dir(), "target"))
    path = os.path.join(target_dir, "release", "sockit")
    if not os.access(path, os.X_OK):
        print("bench/ping.py: cargo build --release", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release"], cwd=root_dir(), check=True, timeout=1800)
    return path


def run_once(argv, count, limit):
    """Runs one ping; returns (transmitted, received, [rtt_ms...], wall seconds, stderr)."""
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    wall = time.monotonic() - t0
    rtts = [float(m.group(2)) for m in REPLY.finditer(r.stdout)]
    m = TOTALS.search(r.stdout)
    if not m:
        raise RuntimeError(f"no statistics from {argv[0]} (exit {r.returncode}): {r.stderr.strip()}")
    tx, rx = int(m.group(1)), int(m.group(2))
    if tx != count:
        raise RuntimeError(f"{argv[0]} sent {tx} requests, expected {count}")
    return tx, rx, rtts, wall, r.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockit", help="sockit binary (default: target/release/sockit, built if missing)")
    ap.add_argument("--runs", type=int, default=10, help="rounds per tool (default 10)")
    ap.add_argument("--count", type=int, default=100, help="requests per run (default 100)")
    ap.add_argument("--interval", default="0.01", help="seconds between requests (default 0.01)")
    ap.add_argument("--check", action="store_true", help="exit 1 unless loss is 0 and the RTT ratio is within 0.8-1.2")
    args = ap.parse_args()

    if os.geteuid() != 0 and float(args.interval) < 0.2:
        sys.exit("bench/ping.py: intervals below 0.2 s need root (as in iputils)")
    iputils = ensure_iputils()
    sockit = ensure_sockit(args.sockit)
    common = [TARGET, "-c", str(args.count), "-i", args.interval]
    tools = {
        "iputils": [iputils] + common,
        "sockit": [sockit, "ping"] + common,
    }
    limit = 30 + args.count * float(args.interval) * 3

    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            group_range = " ".join(f.read().split())
    except OSError:
        group_range = "?"
    kind = "raw" if "raw socket" in run_once([sockit, "-v", "ping", TARGET, "-c", "1"], 1, 30)[4] else "datagram"
    print(f"ping {' '.join(common)}, {args.runs} interleaved runs per tool")
    print(f"iputils: {version_of([iputils, '-V']).splitlines()[0]}")
    print(f"sockit:  {version_of([sockit, '--version'])} ({kind} ICMP socket)")
    print(f"uid {os.geteuid()}, net.ipv4.ping_group_range = {group_range}, {os.cpu_count()} CPUs")
    print()

    results = {name: {"tx": 0, "rx": 0, "rtts": [], "run_medians": [], "walls": []} for name in tools}
    order = list(tools)
    for i in range(args.runs):
        for name in order if i % 2 == 0 else reversed(order):
            tx, rx, rtts, wall, _ = run_once(tools[name], args.count, limit)
            res = results[name]
            res["tx"] += tx
            res["rx"] += rx
            res["rtts"].extend(rtts)
            res["walls"].append(wall)
            if rtts:
                res["run_medians"].append(statistics.median(rtts))
            med = f"{statistics.median(rtts):.3f} ms" if rtts else "-"
            print(f"  run {i + 1} {name:8} {rx}/{tx} received, median RTT {med}, {wall:.2f} s")
    print()

    print(f"{'tool':8} {'sent':>6} {'recv':>6} {'loss':>7} {'median RTT':>11} {'p10':>7} {'p90':>7} {'run medians (ms)':>30}")
    summary = {}
    for name, res in results.items():
        loss = 100.0 * (res["tx"] - res["rx"]) / res["tx"] if res["tx"] else 100.0
        rtts = sorted(res["rtts"])
        med = statistics.median(rtts) if rtts else float("nan")
        p10 = rtts[len(rtts) // 10] if rtts else float("nan")
        p90 = rtts[(len(rtts) * 9) // 10] if rtts else float("nan")
        runs = " ".join(f"{m:.3f}" for m in res["run_medians"])
        summary[name] = (loss, med)
        print(f"{name:8} {res['tx']:>6} {res['rx']:>6} {loss:>6.2f}% {med:>8.3f} ms {p10:>7.3f} {p90:>7.3f} {runs:>30}")
    ratio = summary["sockit"][1] / summary["iputils"][1] if summary["iputils"][1] > 0 else float("nan")
    ok = summary["sockit"][0] == 0 and summary["iputils"][0] == 0 and 0.8 <= ratio <= 1.2
    print()
    print(f"median RTT ratio sockit/iputils: {ratio:.3f} (target 0.8-1.2, loss 0): {'ok' if ok else 'MISSED'}")
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        sys.exit(f"bench/ping.py: {e}")
