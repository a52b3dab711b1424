"""A small client for the Nimbus VM API (HTTP over a unix socket) and a VMM process
whose serial console is driven like a person at the shell (tests/boot/guest_session.py)."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boot"))
from guest_session import Session  # noqa: E402

READY = b"nimbus-guest: ready"
BOOT_TIMEOUT = 240


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Api:
    def __init__(self, path):
        self.path = path

    def call(self, method, url, body=None, raw=None):
        """Returns (status, parsed JSON body or None)."""
        conn = UnixConnection(self.path)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, url, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        return resp.status, (json.loads(text) if text.strip() else None)

    def ok(self, method, url, body=None):
        status, reply = self.call(method, url, body)
        if status >= 300:
            raise AssertionError(f"{method} {url} {body}: {status} {reply}")
        return reply

    def info(self):
        return self.ok("GET", "/")

    def wait_state(self, state, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.info()["state"] == state:
                return
            time.sleep(0.1)
        raise AssertionError(f"state did not become {state}: {self.info()}")


class VmmProcess(Session):
    """`nimbus vmm --api-sock SOCK` with its console on stdio."""

    def __init__(self, nimbus, sock, *args):
        if os.path.exists(sock):
            os.unlink(sock)
        super().__init__([nimbus, "vmm", "--api-sock", sock, *args])
        self.api = Api(sock)
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the VMM did not create its API socket: {self.out!r}")
            time.sleep(0.02)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check(cond, message):
    if not cond:
        raise AssertionError(message)
