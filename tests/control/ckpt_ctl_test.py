#!/usr/bin/env python3
"""holdfastctl ckpt status and clear against a real holdfast-ckptd.

    ckpt_ctl_test.py --ckptd BIN --replay BIN --holdfastctl BIN --pcaps DIR

holdfast-ckptd runs with a token file. Before any application exists,
status shows the store at the size it was made with. holdfast-replay then
checkpoints an FTP capture as application "holdfast" (holdfastctl's default)
and, killed mid-capture and recovered on two workers, as "crashed": status
must show each application's committed set with as many connections as
`holdfastctl conns --ckpt` lists, one region line per worker and module with
the use the server counted, and the recovery report of "crashed" with the
figures the replay sent. --json must be the server's reply. A wrong token,
a missing socket and an unknown subcommand fail with the right status and
message; clear is refused while the application's writer is connected, and
afterwards neither status nor conns --ckpt finds the set. Every process is
stopped and every file removed, also on failure.
"""

import argparse
import json
import os
import subprocess
import sys
import time

# holdfast-ckptd's own test has the harness: a server on a private socket and
# store that cleanup() removes, and a protocol client.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "checkpoint"))
from ckptd_test import LAYOUT, Client, Failure, Test, check  # noqa: E402

SIZE_MB = 64


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckptd", required=True)
    ap.add_argument("--replay", required=True)
    ap.add_argument("--holdfastctl", required=True)
    ap.add_argument("--pcaps", required=True)
    a = ap.parse_args()
    t = Test(os.path.abspath(a.ckptd))
    daemon = None
    writer = None
    try:
        token = "ckpt-ctl-test-%d" % os.getpid()
        token_file = t.path("ckptd.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token + "\n")
        daemon = t.start_listening("--token-file", token_file, size_mb=str(SIZE_MB))
        sock = t.sock
        common = ["--ckpt", sock, "--ckpt-token-file", token_file]

        def ctl(*args):
            return run([a.holdfastctl] + list(args) + common)

        def status(app="holdfast"):
            text = ctl("ckpt", "status", "--app", app)
            check(text.returncode == 0, "ckpt status failed: " + text.stderr)
            js = ctl("ckpt", "status", "--app", app, "--json")
            check(js.returncode == 0, "ckpt status --json failed: " + js.stderr)
            return text.stdout, json.loads(js.stdout)

        def app_of(stats, app):
            found = [x for x in stats["apps"] if x["app"] == app]
            return found[0] if found else None

        def section(text, app):
            """The lines status prints about one application ("" if none)."""
            out = []
            for line in text.splitlines():
                if line == "Application " + app:
                    out = [line]
                elif out and line == "":
                    break
                elif out:
                    out.append(line)
            return "\n".join(out)

        # 1. An empty store: its size is what --size-mb made it.
        text, stats = status()
        check(stats["type"] == "stats", "--json is the server's stats reply: %s" % stats)
        check(stats["store"]["bytes"] == SIZE_MB << 20,
              "store bytes %s, expected %d" % (stats["store"]["bytes"], SIZE_MB << 20))
        check("%.1f MiB (%d bytes)" % (SIZE_MB, SIZE_MB << 20) in text,
              "status shows the store's size: " + text)
        check(stats["store"]["path"] in text, "status names the store's path: " + text)
        check(stats["apps"] == [] and "No application has data" in text,
              "no application yet: " + text)
        check([c["role"] for c in stats["clients"]] == ["monitor"],
              "holdfastctl is the only client, as a monitor: %s" % stats["clients"])

        # 2. A replayed FTP capture, checkpointed as "holdfast".
        config = os.path.join(a.pcaps, "ftp.config.json")
        pcap = os.path.join(a.pcaps, "real", "ftp-multi.pcap")
        r = run([a.replay, "--config", config, "--pcap", pcap, "--quiet", "--ckpt", sock,
                 "--ckpt-token-file", token_file])
        check(r.returncode == 0, "replay failed: " + r.stderr)

        def expect_set(app, workers):
            whole, stats = status(app)
            text = section(whole, app)
            entry = app_of(stats, app)
            check(entry is not None, "status --json lists %s: %s" % (app, stats["apps"]))
            committed = entry["committed"]
            check(committed is not None, app + ": a committed set")
            listing = ctl("conns", "--app", app, "--json")
            check(listing.returncode == 0, "conns --ckpt failed: " + listing.stderr)
            listed = json.loads(listing.stdout)
            check(len(listed["connections"]) > 0, app + ": the set holds connections")
            check(committed["connections"] == len(listed["connections"]),
                  "%s: status counts %d connections, conns --ckpt lists %d"
                  % (app, committed["connections"], len(listed["connections"])))
            check(committed["set"] == listed["set"], app + ": the same set")
            check(text != "", "status shows %s: %s" % (app, whole))
            check("committed set %d (epoch %d): %d connections"
                  % (committed["set"], committed["epoch"], committed["connections"]) in text,
                  app + ": the committed set's line: " + text)
            check("staging set: none" in text and "writer: none connected" in text,
                  app + ": no staging set and no writer after the replay: " + text)
            regions = committed["regions"]
            check(len({x["worker"] for x in regions}) == workers,
                  "%s: regions of %d workers: %s" % (app, workers, regions))
            base_used = sum(x["used"] for x in regions if x["module"] == 0)
            check(base_used == committed["connections"], app + ": base slots used = connections")
            lines = [l.split() for l in text.splitlines()
                     if l.startswith("  committed ") and not l.startswith("  committed set")]
            check(len(lines) == len(regions), "%s: one table line per region: %s"
                  % (app, text))
            for x, cols in zip(regions, lines):
                # committed SET WORKER MODULE... SLOTS USED USE
                check(cols[1] == str(committed["set"]) and cols[2] == str(x["worker"]) and
                      cols[-3] == str(x["slots"]) and cols[-2] == str(x["used"]),
                      "%s: region line %s for %s" % (app, cols, x))
            check(any(c[3:-3] == ["ftp", "sessions"] and c[-2] == "1" for c in lines),
                  app + ": the FTP session's region is in use: " + text)
            return text, entry

        _, entry = expect_set("holdfast", 1)
        check(entry["report"] is None, "no recovery report without a recovery")

        # 3. Killed mid-capture, recovered on two workers: the report.
        verdicts = [json.loads(l) for l in
                    open(os.path.join(a.pcaps, "real", "ftp-multi.expected.jsonl"))]
        crash = max(v["index"] for v in verdicts if v["reason"] == "expected")
        r = run([a.replay, "--config", config, "--pcap", pcap, "--quiet", "--ckpt", sock,
                 "--ckpt-token-file", token_file, "--ckpt-app", "crashed", "--crash-at",
                 str(crash)])
        check(r.returncode != 0, "the replay should have been killed")
        r = run([a.replay, "--config", config, "--pcap", pcap, "--quiet", "--ckpt", sock,
                 "--ckpt-token-file", token_file, "--ckpt-app", "crashed", "--recover",
                 "--start-at", str(crash), "--workers", "2"])
        check(r.returncode == 0, "recovering replay failed: " + r.stderr)
        text, entry = expect_set("crashed", 2)
        report = entry["report"]
        check(report is not None and report["restored_total"] > 0,
              "crashed: the server keeps the recovery report: %s" % report)
        check("last recovery report:" in text, "crashed: status shows the report: " + text)
        check("Recovery from set %d (epoch %d, 1 worker) into epoch %d (2 workers): "
              "%d connections restored" % (report["from_set"], report["from_epoch"],
                                            report["epoch"], report["restored_total"]) in text,
              "crashed: the report's figures: " + text)
        check(" tcp %d" % report["restored"]["tcp"] in text and "(ftp sessions 1)" in text,
              "crashed: restored per kind: " + text)
        check("discarded: none" in text and "phases: connections" in text,
              "crashed: discarded and phases: " + text)

        # 4. Errors.
        bad_token = t.path("wrong.token")
        with open(os.open(bad_token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("not-the-token\n")
        r = run([a.holdfastctl, "ckpt", "status", "--ckpt", sock, "--ckpt-token-file", bad_token])
        check(r.returncode == 1 and "authentication failed: wrong token" in r.stderr,
              "wrong token: %d %s" % (r.returncode, r.stderr))
        missing = t.path("nothing.sock")
        r = run([a.holdfastctl, "ckpt", "status", "--ckpt", missing])
        check(r.returncode == 1 and
              "cannot reach holdfast-ckptd at %s: No such file or directory" % missing
              in r.stderr, "missing socket: %d %s" % (r.returncode, r.stderr))
        r = ctl("ckpt", "defragment")
        check(r.returncode == 2 and "usage: holdfastctl ckpt" in r.stderr,
              "unknown subcommand: %d %s" % (r.returncode, r.stderr))
        r = ctl("ckpt")
        check(r.returncode == 2 and "usage: holdfastctl ckpt" in r.stderr,
              "no subcommand: %d %s" % (r.returncode, r.stderr))

        # 5. clear: refused while the application's writer is connected.
        writer = Client(sock)
        welcome, fd = writer.call({"type": "hello", "app": "crashed", "role": "writer",
                                   "token": token, "layout": LAYOUT})
        if fd is not None:
            os.close(fd)  # the store: not needed here
        check(welcome.get("type") == "welcome", "writer hello refused: %s" % welcome)
        text, stats = status("crashed")
        text = section(text, "crashed")
        entry = app_of(stats, "crashed")
        check(entry["writer"] is not None and entry["staging"] is not None,
              "a connected writer and its staging set: %s" % entry)
        check("writer: client %d" % entry["writer"] in text and
              "staging set %d:" % entry["staging"]["set"] in text,
              "status shows the writer and its staging set: " + text)
        check(any(l.startswith("  staging %d " % entry["staging"]["set"])
                  for l in text.splitlines()), "the staging set's regions: " + text)
        r = ctl("ckpt", "clear", "--app", "crashed")
        check(r.returncode == 1 and "has a writer connected" in r.stderr,
              "clear with a writer connected: %d %s" % (r.returncode, r.stderr))
        writer.close()
        writer = None

        # 6. clear, and nothing is left to show or to recover.
        for app in ("holdfast", "crashed"):
            deadline = time.time() + 10  # the server notices the writer left
            while True:
                r = ctl("ckpt", "clear", "--app", app)
                if r.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.1)
            check(r.returncode == 0 and r.stdout == "cleared application %s\n" % app,
                  "clear %s: %d %s %s" % (app, r.returncode, r.stdout, r.stderr))
            text, stats = status(app)
            text = section(text, app)
            entry = app_of(stats, app)
            check(entry is None or entry["committed"] is None,
                  "%s: no committed set after clear: %s" % (app, entry))
            check(text == "" or "committed set: none" in text,
                  "%s: status shows no committed set: %s" % (app, text))
            r = ctl("conns", "--app", app)
            check(r.returncode == 1 and "no committed checkpoint set" in r.stderr,
                  "%s: conns --ckpt after clear: %d %s" % (app, r.returncode, r.stderr))
        print("ok: ckpt status shows the store, sets, regions and recovery report; clear works")
        return 0
    except Failure as e:
        print("FAIL:", e)
        if daemon is not None:
            sys.stdout.write(daemon.log()[-2000:])
        return 1
    finally:
        if writer is not None:
            writer.close()
        t.cleanup()


if __name__ == "__main__":
    sys.exit(main())
