#!/usr/bin/python3
"""Crash equivalence over one capture (docs/checkpoint.md, "Crash equivalence").

For crash points N across the capture, holdfast-replay checkpoints into a
real holdfast-ckptd and kills itself with SIGKILL while handling frame N
(after its state changes, before its verdict); a second run recovers from
the store and continues from frame N, as a retransmission would. The two
verdict streams joined must equal one uninterrupted run's, frame for frame:

- the same verdict and reason for every frame; the one exception is frame N
  itself when it opened its connection: the first run's checkpoint already
  holds that connection, so the retransmitted frame finds it
  (new_connection or expected becomes established, same connection);
- connection IDs equal up to renaming (the restarted run has a new epoch, so
  its new connections get new IDs; the renaming must be one to one), and an
  expected frame's "master" renamed the same way.

Crash points: HF_CRASH_POINTS (--points, default 40) per capture, every
frame of a capture that short. Layer-7 captures (FTP and SIP: "ftp" or
"sip" in the name) are crashed at every frame, up to HF_CRASH_POINTS_L7
(--l7-points, default 400; a sanitizer build may want fewer) or
HF_CRASH_POINTS if more: what a layer-7 module keeps between frames is
state no other module has, and a crash anywhere in it must be survived. A crash between a PASV/EPSV reply (or a PORT/EPRT) and the data
SYN must keep the expectation, or the data connection is dropped after
recovery; a crash in the middle of a control line split across segments,
or with a segment held ahead of a gap, must keep the partial line and the
held bytes; a crash on the announcing segment itself must not open the
expectation twice when the segment is sent again; a crash on the data SYN
must not leave the expectation open for a second SYN; and a crash in the
middle of a data transfer must keep the data connection and its master.
SIP: a crash between the answer (200 with SDP) and the first RTP must keep
the call's pinholes; a crash during media must keep the media connection
linked to its call, so a BYE after recovery still closes it; a crash in a
message split across TCP segments must keep the reader's partial message.

The worker counts before and after the crash vary with N, including changes
of count across the crash (WORKER_PLANS). --workers N[,N...] (a capture's
workers=... column in captures.txt) restricts both to the counts given:
the plans whose counts are all allowed, then the other pairs of allowed
counts; the uninterrupted and control runs use the smallest allowed count
(1 by default). A control run without --recover must differ from the
uninterrupted run (its established connections' frames are dropped),
which shows the comparison can fail.

usage: crash_sweep.py --replay BIN --ckptd BIN --pcaps DIR --capture REL --config REL
                      [--points N] [--l7-points N] [--workers N[,N...]]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# (workers before the crash, workers after), cycled over the crash points.
WORKER_PLANS = [(1, 1), (1, 3), (2, 1), (3, 2), (2, 2)]


def worker_plans(allowed):
    """WORKER_PLANS restricted to the allowed worker counts (None: all):
    the plans with both counts allowed, then every other (before, after)
    pair of allowed counts, so a change of count across the crash stays
    covered when two or more counts are allowed."""
    if allowed is None:
        return list(WORKER_PLANS)
    plans = [p for p in WORKER_PLANS if p[0] in allowed and p[1] in allowed]
    plans += [(b, a) for b in sorted(allowed) for a in sorted(allowed) if (b, a) not in plans]
    return plans


def read_verdicts(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# Crash points for an FTP capture: every frame, up to this many.
L7_POINTS = 400


def crash_points(reference, limit):
    """Every frame of a short capture; for a long one, every frame that opens
    a connection plus evenly spaced frames, `limit` in all."""
    n = len(reference)
    if n <= limit:
        return list(range(1, n + 1))
    openers = [v["index"] for v in reference if v["reason"] in ("new_connection", "expected")]
    points = set(openers[: limit // 2])
    step = n / (limit - len(points))
    k = 0.0
    while len(points) < limit and k < n:
        points.add(int(k) + 1)
        k += step
    return sorted(points)


def compare(reference, joined, crash_at):
    """Returns a list of differences (empty when equivalent)."""
    diffs = []
    if len(joined) != len(reference):
        return ["%d verdicts, the uninterrupted run has %d" % (len(joined), len(reference))]
    renamed = {}
    taken = {}
    for ref, got in zip(reference, joined):
        if ref["index"] != got["index"]:
            diffs.append("frame %d: got a verdict for frame %d" % (ref["index"], got["index"]))
            continue
        retransmitted_opener = got["index"] == crash_at and ref["reason"] in (
            "new_connection", "expected") and got["reason"] == "established"
        same_reason = ref["reason"] == got["reason"] or retransmitted_opener
        ok = ref["verdict"] == got["verdict"] and same_reason
        # An expected frame names its master; the same frame found
        # established after recovery names none.
        if "master" in got and "master" not in ref:
            ok = False
        if "master" in ref and "master" not in got and not retransmitted_opener:
            ok = False
        for field in ("conn", "master"):
            if field not in ref or field not in got:
                continue
            if (ref[field] == 0) != (got[field] == 0):
                ok = False
            elif ref[field] != 0:
                if renamed.setdefault(ref[field], got[field]) != got[field]:
                    ok = False
                if taken.setdefault(got[field], ref[field]) != ref[field]:
                    ok = False
        if not ok:
            diffs.append("frame %d: expected %s %s conn=%d%s, got %s %s conn=%d%s" %
                         (ref["index"], ref["verdict"], ref["reason"], ref["conn"],
                          " master=%d" % ref["master"] if "master" in ref else "",
                          got["verdict"], got["reason"], got["conn"],
                          " master=%d" % got["master"] if "master" in got else ""))
    return diffs


class Ckptd:
    def __init__(self, binary, work):
        self.socket = os.path.join(work, "ckptd.sock")
        self.store = "/dev/shm/hf-crash-%d.store" % os.getpid()
        self.log = open(os.path.join(work, "ckptd.log"), "w")
        self.proc = subprocess.Popen([binary, "--socket", self.socket, "--store", self.store,
                                      "--size-mb", "64"], stdout=self.log, stderr=self.log)
        for _ in range(100):
            if os.path.exists(self.socket):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("holdfast-ckptd did not start (see %s)" % self.log.name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if os.path.exists(self.store):
            os.unlink(self.store)


def run_replay(args, config, work, name, extra):
    out = os.path.join(work, name + ".jsonl")
    cmd = [args.replay, "--config", config, "--pcap", os.path.join(args.pcaps, args.capture),
           "--verdicts", out, "--quiet"] + extra
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay", required=True)
    ap.add_argument("--ckptd", required=True)
    ap.add_argument("--pcaps", required=True)
    ap.add_argument("--capture", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--points", type=int,
                    default=int(os.environ.get("HF_CRASH_POINTS", "40")))
    ap.add_argument("--l7-points", type=int,
                    default=int(os.environ.get("HF_CRASH_POINTS_L7", str(L7_POINTS))))
    ap.add_argument("--workers", default=None,
                    help="comma-separated worker counts allowed before and after the crash "
                         "(default: those of WORKER_PLANS)")
    args = ap.parse_args()
    allowed = None
    if args.workers is not None:
        try:
            allowed = {int(w) for w in args.workers.split(",")}
        except ValueError:
            allowed = set()
        if not allowed or min(allowed) < 1:
            ap.error("--workers %r: expected positive counts separated by commas" % args.workers)
    plans = worker_plans(allowed)
    single = str(min(allowed)) if allowed else "1"  # the uninterrupted and control runs

    work = tempfile.mkdtemp(prefix="hf-crash-")
    ckptd = None
    try:
        # The capture's config, with small tables: every run scans them.
        with open(os.path.join(args.pcaps, args.config)) as f:
            cfg = json.load(f)
        cfg.setdefault("limits", {})
        cfg["limits"]["connections_per_worker"] = 1024
        cfg["limits"]["fragments_per_worker"] = 256
        config = os.path.join(work, "config.json")
        with open(config, "w") as f:
            json.dump(cfg, f)

        proc, ref_path = run_replay(args, config, work, "reference", ["--workers", single])
        if proc.returncode != 0:
            sys.exit("uninterrupted run failed:\n" + proc.stderr)
        reference = read_verdicts(ref_path)
        ckptd = Ckptd(args.ckptd, work)
        sock = ["--ckpt", ckptd.socket]

        failures = []
        limit = args.points
        name = os.path.basename(args.capture)
        if "ftp" in name or "sip" in name:
            limit = max(limit, args.l7_points)
        points = crash_points(reference, limit)
        control_done = False
        for k, n in enumerate(points):
            before, after = plans[k % len(plans)]
            first, first_out = run_replay(args, config, work, "first",
                                          sock + ["--workers", str(before), "--crash-at", str(n)])
            if first.returncode != -signal.SIGKILL:
                failures.append("crash at %d: the first run exited with %d, not SIGKILL:\n%s" %
                                (n, first.returncode, first.stderr))
                continue
            second, second_out = run_replay(
                args, config, work, "second",
                sock + ["--workers", str(after), "--recover", "--start-at", str(n)])
            if second.returncode != 0:
                failures.append("recovery at %d failed (%d):\n%s" %
                                (n, second.returncode, second.stderr))
                continue
            joined = read_verdicts(first_out) + read_verdicts(second_out)
            diffs = compare(reference, joined, n)
            if diffs:
                failures.append("crash at frame %d (%d -> %d workers): %d frames differ:\n  %s" %
                                (n, before, after, len(diffs), "\n  ".join(diffs[:5])))
            # Control: the same continuation without recovery must differ as
            # soon as a connection is open across the crash.
            if not control_done and n > 1 and any(
                    v["reason"] == "established" and v["conn"] != 0
                    and any(r["conn"] == v["conn"] for r in reference[: n - 1])
                    for v in reference[n:]):
                first, first_out = run_replay(args, config, work, "first",
                                              sock + ["--workers", single, "--crash-at", str(n)])
                plain, plain_out = run_replay(args, config, work, "plain",
                                              sock + ["--workers", single, "--start-at", str(n)])
                joined = read_verdicts(first_out) + read_verdicts(plain_out)
                if not compare(reference, joined, n):
                    failures.append("control: without --recover the run after a crash at %d "
                                    "equals the uninterrupted one, so the sweep proves nothing"
                                    % n)
                control_done = True

        if failures:
            for f in failures[:10]:
                print("FAIL", f)
            print("%d of %d crash points failed" % (len(failures), len(points)))
            sys.exit(1)
        print("ok: %s: %d crash points, verdicts equal the uninterrupted run's%s" %
              (args.capture, len(points),
               "; control without recovery differs" if control_done else
               "; no connection spans a crash point, so no control run"))
    finally:
        if ckptd is not None:
            ckptd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
