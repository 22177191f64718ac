#!/usr/bin/python3
"""holdfast on two net_pcap vdevs: what comes out of each port.

Each port reads its own capture, so the order between the two ports is not
defined; the frames are therefore chosen so that every verdict is decided by
policy and by the frame itself, never by the other port's traffic. Frames
must leave unchanged, in order, by the paired port, and the final statistics
must count every drop by its reason.

usage: net_pcap_test.py HOLDFAST
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, rdpcap, wrpcap  # noqa: E402

HOLDFAST = sys.argv[1]

CONFIG = {
    "ports": [{"inside": "net_pcap0", "outside": "net_pcap1"}],
    "inside_networks": ["10.0.0.0/24"],
    "rules": [
        {"name": "no-smtp-out", "side": "inside", "protocol": "tcp", "dst_ports": [25],
         "action": "deny"},
        {"name": "inside-out", "side": "inside", "action": "allow"},
        {"name": "ssh-in", "side": "outside", "protocol": "tcp", "dst": "10.0.0.5/32",
         "dst_ports": [22], "action": "allow"},
    ],
    "default": "deny",
}

IN_MAC = "02:00:00:00:00:01"
OUT_MAC = "02:00:00:00:00:02"


def inside_frames():
    """(frame, expected reason) arriving on the inside port."""
    e = Ether(src=IN_MAC, dst=OUT_MAC)
    frames = []
    for i in range(4):
        frames.append((e / IP(src="10.0.0.1", dst="192.0.2.1") / UDP(sport=5000 + i, dport=53)
                       / Raw(b"query%d" % i), "new_connection"))
    frames.append((e / IP(src="10.0.0.1", dst="192.0.2.80") / TCP(sport=40000, dport=80, flags="S",
                                                                  seq=1), "new_connection"))
    frames.append((e / IP(src="10.0.0.1", dst="192.0.2.25") / TCP(sport=40001, dport=25, flags="S"),
                   "policy_deny"))
    frames.append((e / IP(src="10.0.0.1", dst="192.0.2.80") / TCP(sport=40002, dport=80, flags="A"),
                   "tcp_mid_stream"))
    frames.append((Ether(src=IN_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1",
                                                                     pdst="10.0.0.2"), "arp"))
    # A truncated IPv4 header.
    frames.append((Ether(bytes(e / IP(src="10.0.0.1", dst="192.0.2.1") / UDP())[:24]),
                   "ipv4_truncated"))
    return frames


def outside_frames():
    e = Ether(src=OUT_MAC, dst=IN_MAC)
    frames = []
    frames.append((e / IP(src="192.0.2.9", dst="10.0.0.1") / TCP(sport=1234, dport=22, flags="S"),
                   "default_deny"))
    frames.append((e / IP(src="192.0.2.9", dst="10.0.0.5") / TCP(sport=1235, dport=22, flags="S"),
                   "new_connection"))
    frames.append((e / IP(src="192.0.2.9", dst="10.0.0.5") / ICMP(type=8, id=1), "default_deny"))
    bad = e / IP(src="192.0.2.9", dst="10.0.0.5") / TCP(sport=1236, dport=22, flags="S", chksum=1)
    frames.append((bad, "bad_l4_checksum"))
    return frames


def write(path, frames):
    packets = [f for f, _ in frames]
    for i, p in enumerate(packets):
        p.time = 1700000000 + i
    wrpcap(path, packets)


def main():
    work = tempfile.mkdtemp(prefix="hf-dpdk-")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    ins, outs = inside_frames(), outside_frames()
    write(os.path.join(work, "rx_inside.pcap"), ins)
    write(os.path.join(work, "rx_outside.pcap"), outs)
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump(CONFIG, f)
    tx_outside = os.path.join(work, "tx_outside.pcap")
    tx_inside = os.path.join(work, "tx_inside.pcap")
    cmd = [HOLDFAST, "--no-huge", "--no-pci", "-m", "512", "-l", "0", "--no-shconf",
           "--no-telemetry", "--file-prefix", "hf-dpdk-%d" % os.getpid(),
           # A port transmits what passed from its pair's other port.
           "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (os.path.join(work, "rx_inside.pcap"),
                                                         tx_inside),
           "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (os.path.join(work, "rx_outside.pcap"),
                                                         tx_outside),
           "--", "--config", config]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = []
    reader = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)
    reader.start()
    total = len(ins) + len(outs)
    try:
        # net_pcap reads its whole capture within the first loops once the
        # dataplane forwards; give it a moment after it says so.
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if any("forwarding with" in line for line in list(log)):
                time.sleep(2)
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    err = "".join(log)
    if proc.returncode != 0:
        print(err)
        sys.exit("holdfast exited with %d" % proc.returncode)
    stats = json.loads(out)

    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    rx = sum(p["rx_packets"] for p in stats["ports"])
    expect(rx == total, "ports received %d frames, expected %d" % (rx, total))

    def passed(frames):
        return [bytes(f) for f, reason in frames
                if reason in ("new_connection", "established", "arp")]

    got_outside = [bytes(p) for p in rdpcap(tx_outside)] if os.path.exists(tx_outside) else []
    got_inside = [bytes(p) for p in rdpcap(tx_inside)] if os.path.exists(tx_inside) else []
    expect(got_outside == passed(ins),
           "outside port sent %d frames, expected the %d passed inside frames, unchanged and in "
           "order" % (len(got_outside), len(passed(ins))))
    expect(got_inside == passed(outs),
           "inside port sent %d frames, expected the %d passed outside frames" %
           (len(got_inside), len(passed(outs))))

    expected_reasons = {}
    for _, reason in ins + outs:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    expect(stats["pipeline"]["reasons"] == expected_reasons,
           "reasons %s, expected %s" % (stats["pipeline"]["reasons"], expected_reasons))
    tx_ports = {p["side"]: p["tx_packets"] for p in stats["ports"]}
    expect(tx_ports == {"outside": len(passed(ins)), "inside": len(passed(outs))},
           "port tx counters %s" % tx_ports)

    if failures:
        print("stderr of holdfast:\n" + err)
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("ok: %d frames in, %d out of the outside port, %d out of the inside port" %
          (total, len(got_outside), len(got_inside)))


if __name__ == "__main__":
    try:
        main()
    finally:
        # Nothing may outlive the test, DPDK's runtime directory included.
        shutil.rmtree("/var/run/dpdk/hf-dpdk-%d" % os.getpid(), ignore_errors=True)
