#!/usr/bin/env python3
"""Restart to first forwarded packet: the real dataplane, with and without recovery.

For each connection count N, under a real holdfast-ckptd (store in /dev/shm):

 1. fill: holdfast-replay --ckpt replays a generated capture of N TCP
    handshakes (SYN, SYN/ACK, ACK; timestamps of now), which leaves N
    established connections in the application's committed set;
 2. start build/holdfast (DPDK, --no-huge, two net_pcap vdevs whose rx
    captures hold a few ACKs of those connections in each direction and one
    SYN of a new connection) in three modes, alternately, --reps times:
      plain    no checkpointing at all
      fresh    --ckpt, as another application (nothing to recover: a new,
               empty set is allocated, committed, written to)
      recover  --ckpt --recover: rebuilds the N connections first
    and reads the dataplane's own "first packet forwarded X ms after start"
    (its clock starts in main(), before rte_eal_init), the recovery report
    (phase_ms, total_ms) and the final statistics (which probes passed);
    every stderr line is also timestamped on arrival, relative to the spawn,
    to split the start into EAL start-up, ports and pipelines, checkpoint
    attach and recovery, and forwarding.
A recover run commits the set it rebuilt, so the next one recovers the same
N connections (and the probe SYN's). The EAL is given the same memory
(-m) in every mode and for every N, and the flow table is sized 1.25 N
(at least 65536) in every mode, so that the modes differ by checkpointing
and recovery only.

usage: restart_bench.py BUILD_DIR [--conns 10000,100000,1000000] [--reps 5]
                        [--cpu 1] [--memory-mb 1536] [--json OUT.json]
                        [--eal-debug]
--eal-debug adds one plain run per N with the EAL's debug log, whose
timestamped lines show where EAL start-up spends its time (the TSC
calibration sleep among them).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array

IN_MAC = bytes.fromhex("020000000001")
OUT_MAC = bytes.fromhex("020000000002")
SYN, ACK, PSH = 0x02, 0x10, 0x08
PROBES = 16  # ACKs per direction in the probe captures


def csum(data):
    """RFC 1071 checksum, as the bytes to store."""
    if len(data) % 2:
        data += b"\0"
    s = sum(array("H", data))  # little-endian words: the result is byte-swapped...
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return struct.pack("<H", ~s & 0xFFFF)  # ...and so stored little-endian


def tuple_of(i):
    """Connection i: client 10.x.y.z:port (inside), server 198.18.x.y:443."""
    client = 0x0A000001 + (i >> 4)
    cport = 20000 + (i & 15)
    server = 0xC6120000 + (i % 4093) + 1
    cisn = (i * 2654435761) & 0xFFFFFFFF
    sisn = (i * 40503 + 12345) & 0xFFFFFFFF
    return client, cport, server, 443, cisn, sisn


def tcp_frame(src, sport, dst, dport, seq, ack, flags, window, syn_options=False):
    opts = b""
    if syn_options:  # MSS 1460, NOP, window scale 7, SACK permitted, NOP, NOP
        opts = bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 7, 4, 2, 1, 1])
    tcp_len = 20 + len(opts)
    ip_src, ip_dst = struct.pack("!I", src), struct.pack("!I", dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (tcp_len // 4) << 4, flags, window, 0,
                      0) + opts
    pseudo = ip_src + ip_dst + struct.pack("!BBH", 0, 6, tcp_len)
    tcp = tcp[:16] + csum(pseudo + tcp) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6, 0, ip_src, ip_dst)
    ip = ip[:10] + csum(ip) + ip[12:]
    from_inside = (src >> 24) == 10
    eth = (OUT_MAC + IN_MAC if from_inside else IN_MAC + OUT_MAC) + b"\x08\x00"
    frame = eth + ip + tcp
    return frame + b"\0" * max(0, 60 - len(frame))


def handshake(i):
    c, cp, s, sp, ci, si = tuple_of(i)
    return [
        tcp_frame(c, cp, s, sp, ci, 0, SYN, 64240, True),
        tcp_frame(s, sp, c, cp, si, (ci + 1) & 0xFFFFFFFF, SYN | ACK, 65160, True),
        tcp_frame(c, cp, s, sp, (ci + 1) & 0xFFFFFFFF, (si + 1) & 0xFFFFFFFF, ACK, 502),
    ]


def probe_ack(i, from_client):
    c, cp, s, sp, ci, si = tuple_of(i)
    if from_client:
        return tcp_frame(c, cp, s, sp, (ci + 1) & 0xFFFFFFFF, (si + 1) & 0xFFFFFFFF, ACK | PSH, 502)
    return tcp_frame(s, sp, c, cp, (si + 1) & 0xFFFFFFFF, (ci + 1) & 0xFFFFFFFF, ACK | PSH, 509)


def write_pcap(path, frames, start=None):
    t = time.time() if start is None else start
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k, frame in enumerate(frames):
            us = int(t * 1e6) + k
            f.write(struct.pack("<IIII", us // 1000000, us % 1000000, len(frame), len(frame)))
            f.write(frame)


def config(conns):
    return {
        "ports": [{"inside": "net_pcap0", "outside": "net_pcap1"}],
        "inside_networks": ["10.0.0.0/8"],
        "rules": [{"name": "web-out", "side": "inside", "protocol": "tcp",
                   "dst": "198.18.0.0/15", "dst_ports": [443], "action": "allow"}],
        "default": "deny",
        "limits": {"connections_per_worker": max(65536, conns + conns // 4)},
    }


class Timeline:
    """A child's stderr, each line with its arrival time after the spawn."""

    def __init__(self, proc, t0):
        self.lines = []
        self.t0 = t0
        self.proc = proc
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    def first(self, pattern):
        for t, line in list(self.lines):
            if re.search(pattern, line):
                return t, line
        return None, None


def run_dataplane(args, work, conns, mode, eal_debug=False):
    cmd = ["taskset", "-c", str(args.cpu), os.path.join(args.build, "holdfast"),
           "--no-huge", "--no-pci", "-m", str(args.memory_mb), "-l", str(args.cpu),
           "--no-shconf", "--no-telemetry", "--file-prefix", "hf-restart-%d" % os.getpid(),
           "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (os.path.join(work, "probe_in.pcap"),
                                                         os.path.join(work, "tx_in.pcap")),
           "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (os.path.join(work, "probe_out.pcap"),
                                                         os.path.join(work, "tx_out.pcap"))]
    if eal_debug:
        cmd += ["--log-level", "lib.eal:debug"]
    cmd += ["--", "--config", os.path.join(work, "config.json")]
    if mode in ("fresh", "recover"):
        cmd += ["--ckpt", os.path.join(work, "ckptd.sock"),
                "--ckpt-app", "probe-fresh" if mode == "fresh" else "holdfast"]
    if mode == "recover":
        cmd.append("--recover")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = Timeline(proc, t0)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if log.first(r"first packet forwarded")[0] is not None:
                break
            time.sleep(0.01)
        time.sleep(0.5)  # the rest of the probes
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.thread.join(timeout=5)
    text = "\n".join(line for _, line in log.lines)
    if proc.returncode != 0:
        sys.exit("holdfast (%s, %d connections) exited with %d:\n%s" %
                 (mode, conns, proc.returncode, text))
    stats = json.loads(out)
    t_first, line = log.first(r"first packet forwarded ([0-9.]+) ms after start")
    if line is None:
        sys.exit("holdfast (%s) forwarded nothing:\n%s" % (mode, text))
    first_ms = float(re.search(r"forwarded ([0-9.]+) ms", line).group(1))
    result = {
        "mode": mode,
        "first_packet_ms": first_ms,
        "wall_first_packet_line_ms": 1e3 * t_first,
        "lines": {},
        "pipeline": stats["pipeline"],
    }
    for key, pattern in (("ports", r" ports: "), ("recovery", r" recovery: "),
                         ("checkpoint", r" checkpoint: checkpointing into"),
                         ("forwarding", r" dataplane: forwarding with"),
                         ("first_packet", r"first packet forwarded")):
        t, _ = log.first(pattern)
        if t is not None:
            result["lines"][key] = 1e3 * t
    if eal_debug:
        result["eal_log"] = [(round(1e3 * t, 1), line) for t, line in log.lines]
    if "recovery" in stats:
        result["recovery"] = stats["recovery"]
    return result


def fill_store(args, work, conns):
    """N handshakes through holdfast-replay --ckpt: N connections in the committed set."""
    pcap = os.path.join(work, "handshakes.pcap")
    t = time.monotonic()
    frames = []
    for i in range(conns):
        frames.extend(handshake(i))
    write_pcap(pcap, frames)
    del frames
    gen_s = time.monotonic() - t
    summary = os.path.join(work, "fill.json")
    t = time.monotonic()
    subprocess.run(["taskset", "-c", str(args.cpu), os.path.join(args.build, "holdfast-replay"),
                    "--config", os.path.join(work, "config.json"), "--pcap", pcap,
                    "--ckpt", os.path.join(work, "ckptd.sock"), "--ckpt-app", "holdfast",
                    "--summary-json", summary, "--quiet"], check=True)
    replay_s = time.monotonic() - t
    os.unlink(pcap)
    with open(summary) as f:
        s = json.load(f)
    print("  filled the store with %d connections: capture generated in %.1f s, replayed in "
          "%.1f s" % (conns, gen_s, replay_s), file=sys.stderr)
    return s


def probes(work, conns):
    inside = [probe_ack(i, True) for i in range(min(PROBES, conns))]
    outside = [probe_ack(i, False) for i in range(min(PROBES, conns), min(2 * PROBES, conns))]
    # A new connection's SYN, last: forwarded in every mode.
    c, cp, s, sp, ci, _ = tuple_of(conns + 1)
    inside.append(tcp_frame(c, cp, s, sp, ci, 0, SYN, 64240, True))
    write_pcap(os.path.join(work, "probe_in.pcap"), inside)
    write_pcap(os.path.join(work, "probe_out.pcap"), outside)


def summarize(results):
    print("\n| connections | mode | first packet (ms after main) | recovery total (ms) "
          "| connections / layer7 / check / fragments / write (ms) | probes passed |")
    print("|---:|---|---:|---:|---|---:|")
    for conns, runs in results.items():
        for mode in ("plain", "fresh", "recover"):
            rs = [r for r in runs if r["mode"] == mode]
            if not rs:
                continue
            first = [r["first_packet_ms"] for r in rs]
            rec = [r["recovery"]["total_ms"] for r in rs if "recovery" in r]
            phases = ""
            if rec:
                phases = " / ".join(
                    "%.1f" % statistics.median(r["recovery"]["phase_ms"].get(p, 0) for r in rs)
                    for p in ("connections", "layer7", "check", "fragments", "write"))
            passed = statistics.median(r["pipeline"]["passed"] for r in rs)
            print("| %d | %s | %.1f (%.1f-%.1f) | %s | %s | %s |" % (
                conns, mode, statistics.median(first), min(first), max(first),
                "%.1f" % statistics.median(rec) if rec else "-", phases or "-", passed))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--conns", default="10000,100000,1000000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--memory-mb", type=int, default=1536)
    ap.add_argument("--json")
    ap.add_argument("--eal-debug", action="store_true")
    args = ap.parse_args()
    counts = [int(n) for n in args.conns.split(",")]

    work = tempfile.mkdtemp(prefix="hf-restart-")
    store = "/dev/shm/hf-restart-%d.store" % os.getpid()
    # Two sets of the largest table per application (committed and next)
    # for the two applications, at about 200 bytes per slot.
    size_mb = max(256, 4 * max(counts) * 5 // 4 * 210 // (1 << 20) + 64)
    ckptd = None
    results = {}
    try:
        for conns in counts:
            print("%d connections" % conns, file=sys.stderr)
            # A new server and store per N: the first fill recovers nothing.
            if ckptd is not None:
                ckptd.send_signal(signal.SIGTERM)
                ckptd.wait(timeout=30)
            if os.path.exists(store):
                os.unlink(store)
            sock = os.path.join(work, "ckptd.sock")
            ckptd = subprocess.Popen([os.path.join(args.build, "checkpoint", "holdfast-ckptd"),
                                      "--socket", sock, "--store", store,
                                      "--size-mb", str(size_mb)],
                                     stderr=subprocess.DEVNULL)
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            with open(os.path.join(work, "config.json"), "w") as f:
                json.dump(config(conns), f)
            fill = fill_store(args, work, conns)
            probes(work, conns)
            runs = []
            if args.eal_debug:
                r = run_dataplane(args, work, conns, "plain", eal_debug=True)
                runs.append(dict(r, mode="plain-eal-debug"))
                for t, line in r["eal_log"]:
                    print("  %8.1f ms  %s" % (t, line), file=sys.stderr)
            for rep in range(args.reps):
                for mode in ("plain", "fresh", "recover"):
                    r = run_dataplane(args, work, conns, mode)
                    extra = ""
                    if "recovery" in r:
                        extra = " recovery %.1f ms, restored %d" % (
                            r["recovery"]["total_ms"], r["recovery"]["restored_total"])
                    print("  rep %d %-7s first packet %.1f ms after main%s; lines %s" % (
                        rep + 1, mode, r["first_packet_ms"], extra,
                        {k: round(v, 1) for k, v in r["lines"].items()}), file=sys.stderr)
                    runs.append(r)
            results[conns] = runs
            results[conns].append({"mode": "fill", "summary": fill})
    finally:
        if ckptd is not None and ckptd.poll() is None:
            ckptd.send_signal(signal.SIGTERM)
            try:
                ckptd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ckptd.kill()
        if os.path.exists(store):
            os.unlink(store)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f, indent=1)
    summarize(results)


if __name__ == "__main__":
    main()
