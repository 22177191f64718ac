#!/usr/bin/env python3
"""holdfastctl conns against a real holdfast-ckptd (docs/modules/ftp.md).

    conns_test.py --ckptd BIN --replay BIN --holdfastctl BIN --pcaps DIR

holdfast-replay checkpoints an FTP capture into the server's store; then
holdfastctl conns, as a reader of that set, must list every connection the
replay left open, show the control connection as followed by FTP and every
data connection with the master the replay's verdicts name. A second run
kills the replay (SIGKILL) right after the last data connection opened: the
set then holds what recovery would restore, and conns must show it the same
way. Errors: no --ckpt, an unreachable socket, an application without a
set. Every process is stopped and every file removed, also on failure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckptd", required=True)
    ap.add_argument("--replay", required=True)
    ap.add_argument("--holdfastctl", required=True)
    ap.add_argument("--pcaps", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hf-conns-")
    store = "/dev/shm/hf-conns-%d.store" % os.getpid()
    sock = os.path.join(work, "ckptd.sock")
    daemon = None
    try:
        daemon = subprocess.Popen([a.ckptd, "--socket", sock, "--store", store, "--size-mb", "64"],
                                  stderr=open(os.path.join(work, "ckptd.log"), "w"))
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        check(os.path.exists(sock), "holdfast-ckptd did not start")

        config = os.path.join(a.pcaps, "ftp.config.json")
        pcap = os.path.join(a.pcaps, "real", "ftp-multi.pcap")
        verdicts = [json.loads(l) for l in
                    open(os.path.join(a.pcaps, "real", "ftp-multi.expected.jsonl"))]
        masters = {v["conn"]: v["master"] for v in verdicts if v["reason"] == "expected"}
        check(len(masters) >= 2, "the capture should hold several data connections")
        control = set(masters.values())
        check(len(control) == 1, "one control connection")

        def conns(app):
            r = run([a.holdfastctl, "conns", "--ckpt", sock, "--app", app, "--json"])
            check(r.returncode == 0, "conns failed: " + r.stderr)
            return json.loads(r.stdout)

        # Connection IDs are epoch << 40 | counter, and every run of the
        # replay gets a new epoch: compare counters.
        def counter(conn_id):
            return conn_id & ((1 << 40) - 1)

        masters = {counter(d): counter(m) for d, m in masters.items()}
        control = {counter(m) for m in control}

        def expect_relations(listing, what):
            by_id = {counter(c["id"]): c for c in listing["connections"]}
            for c in listing["connections"]:
                if "master" in c:
                    c["master"] = counter(c["master"])
            check(listing["skipped"] == {}, what + ": slots skipped: %s" % listing["skipped"])
            for data, master in masters.items():
                check(data in by_id, "%s: data connection %d not listed" % (what, data))
                check(by_id[data].get("master") == master,
                      "%s: data connection %d shows master %s, expected %d"
                      % (what, data, by_id[data].get("master"), master))
                check(by_id[data]["protocol"] == "tcp", what + ": protocol")
            for m in control:
                check(by_id[m].get("l7") == "ftp", "%s: control %d not shown as FTP" % (what, m))
                check("master" not in by_id[m], what + ": the control connection has no master")

        # 1. A finished replay: its committed set is what it left open.
        r = run([a.replay, "--config", config, "--pcap", pcap, "--ckpt", sock,
                 "--ckpt-app", "finished"])
        check(r.returncode == 0, "replay failed: " + r.stderr)
        expect_relations(conns("finished"), "finished replay")
        text = run([a.holdfastctl, "conns", "--ckpt", sock, "--app", "finished"])
        check(text.returncode == 0 and "ftp control, %d data" % len(masters) in text.stdout,
              "the table shows the FTP session: " + text.stdout + text.stderr)

        # 2. Killed right after the last data connection's SYN.
        last = max(v["index"] for v in verdicts if v["reason"] == "expected")
        r = run([a.replay, "--config", config, "--pcap", pcap, "--ckpt", sock,
                 "--ckpt-app", "crashed", "--crash-at", str(last)])
        check(r.returncode != 0, "the replay should have been killed")
        expect_relations(conns("crashed"), "crashed replay")

        # 3. Errors.
        # Without --ckpt conns asks a running dataplane; there is none here.
        r = run([a.holdfastctl, "conns", "--telemetry", os.path.join(work, "none.v2")])
        check(r.returncode == 1 and "cannot reach the dataplane" in r.stderr,
              "conns without a dataplane: " + r.stderr)
        r = run([a.holdfastctl, "conns", "--ckpt", os.path.join(work, "nothing.sock")])
        check(r.returncode == 1 and "cannot reach holdfast-ckptd" in r.stderr,
              "unreachable socket: " + r.stderr)
        r = run([a.holdfastctl, "conns", "--ckpt", sock, "--app", "nobody"])
        check(r.returncode == 1 and "no committed checkpoint set" in r.stderr,
              "unknown application: " + r.stderr)
        print("ok: holdfastctl conns shows %d data connections under their control connection"
              % len(masters))
        return 0
    except Failure as e:
        print("FAIL:", e)
        log = os.path.join(work, "ckptd.log")
        if os.path.exists(log):
            sys.stdout.write(open(log).read()[-2000:])
        return 1
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        shutil.rmtree(work, ignore_errors=True)
        if os.path.exists(store):
            os.unlink(store)


if __name__ == "__main__":
    sys.exit(main())
