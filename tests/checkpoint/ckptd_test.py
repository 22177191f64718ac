#!/usr/bin/env python3
"""Runs the real holdfast-ckptd binary (docs/checkpoint.md "holdfast-ckptd").

    ckptd_test.py --ckptd BIN

Each check starts the server on a private store and socket and looks at what
an operator would see: exit status, log lines, the socket and store files,
and the protocol on the socket. Every process it starts is killed and every
file removed at the end, whether the checks passed or not.

  command line  --help, usage errors exit 2
  lifecycle     SIGTERM / SIGINT: exit 0, socket removed, store kept;
                a restart validates the store and epochs carry on
  refusals      a foreign file as --store: exit 1, message, file untouched;
                a second server on the same store or socket: exit 1
  crash         after SIGKILL the stale socket is replaced by the next start
  token file    warning when others can read it; hello needs the token
"""

import argparse
import json
import mmap
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

TIMEOUT = 10.0
LAYOUT = {"workers": 2, "slots": 1000, "min_slots": 1,
          "modules": [{"module": 0, "schema": 1, "slot_size": 72},
                      {"module": 1, "schema": 1, "slot_size": 56}]}


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class Daemon:
    """One holdfast-ckptd process, its stderr in a file."""

    def __init__(self, test, *args):
        self.test = test
        self.log_path = test.path(f"ckptd-{len(test.daemons)}.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([test.ckptd, *args], stdout=subprocess.DEVNULL,
                                     stderr=self.log_file)
        test.daemons.append(self)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_log(self, text):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if text in self.log():
                return
            check(self.proc.poll() is None,
                  f"holdfast-ckptd exited ({self.proc.returncode}) before logging "
                  f"{text!r}:\n{self.log()}")
            time.sleep(0.02)
        raise Failure(f"no {text!r} in the log within {TIMEOUT}s:\n{self.log()}")

    def wait(self):
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure(f"holdfast-ckptd did not exit within {TIMEOUT}s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def call(self, msg):
        """Sends msg, returns (reply, descriptor or None)."""
        body = json.dumps(msg).encode()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        head, fds, _, _ = socket.recv_fds(self.sock, 4, 1)
        while len(head) < 4:
            more = self.sock.recv(4 - len(head))
            check(more, "holdfast-ckptd closed the connection")
            head += more
        (n,) = struct.unpack(">I", head)
        body = b""
        while len(body) < n:
            more = self.sock.recv(n - len(body))
            check(more, "holdfast-ckptd closed the connection mid-reply")
            body += more
        return json.loads(body), (fds[0] if fds else None)


class Test:
    def __init__(self, ckptd):
        self.ckptd = ckptd
        parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="holdfast-ckptd-test-", dir=parent)
        self.daemons = []
        self.sock = self.path("ckptd.sock")
        self.store = self.path("holdfast.store")

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        for d in self.daemons:
            d.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *extra, sock=None, store=None, size_mb="64"):
        return Daemon(self, "--socket", sock or self.sock, "--store", store or self.store,
                      "--size-mb", size_mb, *extra)

    def start_listening(self, *extra, **kw):
        d = self.start(*extra, **kw)
        d.wait_for_log("listening on")
        return d

    def writer_hello(self, client, token=None):
        msg = {"type": "hello", "app": "holdfast", "role": "writer", "layout": LAYOUT}
        if token is not None:
            msg["token"] = token
        return client.call(msg)

    # -----------------------------------------------------------------------

    def command_line(self):
        out = subprocess.run([self.ckptd, "--help"], capture_output=True, text=True,
                             timeout=TIMEOUT)
        check(out.returncode == 0 and out.stdout.startswith("usage: holdfast-ckptd"),
              f"--help: {out.returncode} {out.stdout!r}")
        for args, error in [
            ([], "--socket is required"),
            (["--socket", self.sock], "--store is required"),
            (["--socket", self.sock, "--store", self.store, "--size-mb", "x"],
             "--size-mb must be a whole number of MiB"),
            (["--socket", self.sock, "--store", self.store, "--size-mb", "0"],
             "--size-mb must be a whole number of MiB"),
            (["--socket", self.sock, "--store", self.store, "--bogus"],
             "unknown argument \"--bogus\""),
            (["--socket", self.sock, "--store"], "--store needs a value"),
            (["--socket", self.sock, "--socket", self.sock], "--socket is given twice"),
        ]:
            out = subprocess.run([self.ckptd, *args], capture_output=True, text=True,
                                 timeout=TIMEOUT)
            check(out.returncode == 2, f"{args}: exit {out.returncode}, expected 2")
            check(error in out.stderr and "usage:" in out.stderr,
                  f"{args}: no {error!r} in {out.stderr!r}")
        check(not os.path.exists(self.store) and not os.path.exists(self.sock),
              "a usage error created files")

    def lifecycle(self):
        d = self.start_listening()
        check("store " + self.store + " created: 64 MiB" in d.log(), d.log())
        st = os.lstat(self.sock)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
              f"socket mode {oct(st.st_mode)}")
        check(os.stat(self.store).st_size == 64 << 20, "store size")

        c = Client(self.sock)
        welcome, fd = self.writer_hello(c)
        check(welcome.get("type") == "welcome" and welcome["epoch"] == 1, f"welcome: {welcome}")
        check(fd is not None, "no store descriptor with the welcome")
        with mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            check(m[:8] == b"HFSTORE1", f"store magic {m[:8]!r}")
        os.close(fd)
        reply, _ = c.call({"type": "commit", "set": welcome["write"]["set"]})
        check(reply == {"type": "committed", "set": 1}, f"commit: {reply}")

        check(d.stop(signal.SIGTERM) == 0, f"exit status after SIGTERM:\n{d.log()}")
        c.close()
        check(not os.path.exists(self.sock), "the socket is still there after SIGTERM")
        check(os.path.exists(self.store), "the store is gone after SIGTERM")
        for line in ("SIGTERM received, stopping", "stopped: socket"):
            check(line in d.log(), f"no {line!r} in:\n{d.log()}")

        d = self.start_listening()
        check("store " + self.store + " validated" in d.log(), d.log())
        c = Client(self.sock)
        welcome, fd = self.writer_hello(c)
        os.close(fd)
        check(welcome["epoch"] == 2 and welcome["recover"]["set"] == 1,
              f"after a restart: {welcome}")
        check(d.stop(signal.SIGINT) == 0, f"exit status after SIGINT:\n{d.log()}")
        c.close()
        check(not os.path.exists(self.sock), "the socket is still there after SIGINT")

    def foreign_store(self):
        foreign = self.path("foreign")
        data = os.urandom(1 << 20)
        with open(foreign, "wb") as f:
            f.write(data)
        d = self.start(store=foreign)
        check(d.wait() == 1, f"exit status with a foreign store: {d.proc.returncode}")
        check(foreign + " is not a holdfast checkpoint store (bad magic); refusing to touch it"
              in d.log(), d.log())
        with open(foreign, "rb") as f:
            check(f.read() == data, "the foreign file was modified")
        check(not os.path.exists(self.sock), "a socket was created")

    def crash(self):
        d = self.start_listening()
        d.stop(signal.SIGKILL)
        check(stat.S_ISSOCK(os.lstat(self.sock).st_mode), "no stale socket after SIGKILL")
        d = self.start_listening()
        check("replaced the stale socket " + self.sock in d.log(), d.log())
        check("validated" in d.log(), d.log())
        c = Client(self.sock)
        reply, _ = c.call({"type": "hello", "app": "holdfast", "role": "monitor"})
        check(reply.get("type") == "welcome", f"after replacing the socket: {reply}")
        c.close()

        # A second server: on the same store, then on the same socket.
        other_sock = self.path("other.sock")
        second = self.start(sock=other_sock)
        check(second.wait() == 1, "a second server on the same store did not exit 1")
        check(self.store + " is in use by another holdfast-ckptd" in second.log(),
              second.log())
        check(not os.path.exists(other_sock), "the refused server left a socket")
        other_store = self.path("other.store")
        second = self.start(store=other_store)
        check(second.wait() == 1, "a second server on the same socket did not exit 1")
        check("another holdfast-ckptd is listening on " + self.sock in second.log(),
              second.log())
        check(not os.path.exists(other_store), "the refused server created a store")
        # The first one is untouched.
        c = Client(self.sock)
        reply, _ = c.call({"type": "hello", "app": "holdfast", "role": "monitor"})
        check(reply.get("type") == "welcome", f"the first server after the refusals: {reply}")
        c.close()
        check(d.stop() == 0, d.log())

    def token_file(self):
        token = self.path("token")
        with open(token, "w") as f:
            f.write("s3cret\n")
        os.chmod(token, 0o644)
        d = self.start_listening("--token-file", token)
        warning = f"the token file {token} is open to its group or others (mode 0644)"
        check(warning in d.log(), d.log())
        c = Client(self.sock)
        reply, _ = c.call({"type": "hello", "app": "holdfast", "role": "monitor"})
        check(reply == {"type": "error", "error": "authentication failed: no token given"},
              f"without the token: {reply}")
        c.close()
        c = Client(self.sock)
        reply, _ = c.call({"type": "hello", "app": "holdfast", "role": "monitor",
                           "token": "s3cret"})
        check(reply.get("type") == "welcome", f"with the token: {reply}")
        c.close()
        check("refused: authentication failed: no token given" in d.log(), d.log())
        check(d.stop() == 0, d.log())

        os.chmod(token, 0o600)
        d = self.start_listening("--token-file", token)
        check("is open to its group or others" not in d.log(), d.log())
        check(d.stop() == 0, d.log())

        for content, error in [("", "is empty"), ("\n", "is empty"),
                               ("a\nb\n", "must hold one line")]:
            with open(token, "w") as f:
                f.write(content)
            d = self.start("--token-file", token)
            check(d.wait() == 1, f"token file {content!r}: exit {d.proc.returncode}")
            check(error in d.log(), d.log())
        d = self.start("--token-file", self.path("missing"))
        check(d.wait() == 1 and "cannot open the token file" in d.log(), d.log())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckptd", required=True)
    args = parser.parse_args()
    failed = 0
    for name in ("command_line", "lifecycle", "foreign_store", "crash", "token_file"):
        test = Test(os.path.abspath(args.ckptd))
        try:
            getattr(test, name)()
            print(f"ok   {name}")
        except Failure as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception as e:  # a broken check is a failure too, with its cause
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        finally:
            test.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
