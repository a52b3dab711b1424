#!/usr/bin/env python3
"""The instance metadata service from inside the guest.

    imds_test.py NIMBUS IMAGES_DIR WORKDIR [VMM FLAG...]

Boots the bundled initramfs under `nimbus vmm --metadata FILE --net user` with the console on
stdio and, from the guest's busybox shell: IMDSv1 (wget), a v2 token by PUT (nc: busybox wget
has no PUT) and a GET with it, 404 for absent user-data, a port other than 80 on
169.254.169.254 unreachable; then PATCH /mmds/config {"http_tokens": "required"} on the API
socket makes a request without a token 401 while the token still works, and PUT /mmds
replaces the data live. Extra flags go to `nimbus vmm` (--sandbox: under its seccomp filter).
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm_client import READY, BOOT_TIMEOUT, Api, Session  # noqa: E402

MD = "http://169.254.169.254/latest"


def raw(method, path, headers=""):
    """A shell command sending one HTTP/1.0 request to the service with nc; prints the reply."""
    return (f"printf \"{method} {path} HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n{headers}\\r\\n\" "
            f"| nc -w 5 169.254.169.254 80")


def main():
    nimbus, images, work = sys.argv[1:4]
    extra = sys.argv[4:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    metadata = os.path.join(work, "metadata.json")
    with open(metadata, "w") as f:
        json.dump({"data": {"meta-data": {"instance-id": "i-0nimbus42",
                                          "placement": {"availability-zone": "nimbus-west-1a"},
                                          "public-keys": {"0=k1": {"openssh-key": "ssh-ed25519 AAAAkey"}}}},
                   "http_tokens": "optional"}, f)
    sock = os.path.join(work, "api.sock")
    s = Session([nimbus, "vmm", "--api-sock", sock, "--metadata", metadata, "--net", "user",
                 "--exit-on-stop", "--log-level", "warn"] + extra)
    api = Api(sock)
    t0 = time.monotonic()
    try:
        s.expect(READY, BOOT_TIMEOUT)
        boot = time.monotonic() - t0

        out = s.run(f"wget -q -O - {MD}/meta-data/instance-id; echo", "END1")
        assert "i-0nimbus42" in out, f"v1: {out!r}"
        out = s.run(f"wget -q -O - {MD}/meta-data/public-keys/; echo; "
                    f"wget -q -O - {MD}/meta-data/public-keys/0/openssh-key; echo", "END2")
        assert "0=k1" in out and "ssh-ed25519 AAAAkey" in out, f"keys: {out!r}"

        put = raw("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 300\\r\\n")
        out = s.run(f"T=$({put} | tail -n 1); echo token=${{#T}}", "END3")
        assert "token=40" in out, f"token: {out!r}"
        v2 = (f"wget -q -O - --header \"X-aws-ec2-metadata-token: $T\" "
              f"{MD}/meta-data/placement/availability-zone; echo")
        out = s.run(v2, "END4")
        assert "nimbus-west-1a" in out.split(v2)[-1], f"v2: {out!r}"

        out = s.run(raw("GET", "/latest/user-data") + " | head -n 1", "END5")
        assert "HTTP/1.1 404 Not Found" in out, f"user-data: {out!r}"
        out = s.run(raw("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 0\\r\\n")
                    + " | head -n 1", "END6")
        assert "HTTP/1.1 400" in out, f"bad ttl: {out!r}"
        # Another port of the service's address: dropped, so nothing answers.
        out = s.run("nc -w 2 169.254.169.254 22 </dev/null; echo port22-rc=$?", "END7")
        assert "port22-rc=1" in out, f"port 22: {out!r}"

        # IMDSv2 required, live: v1 gets 401, the token still works.
        api.ok("PATCH", "/mmds/config", {"http_tokens": "required"})
        out = s.run(raw("GET", "/latest/meta-data/instance-id") + " | head -n 1", "END8")
        assert "HTTP/1.1 401 Unauthorized" in out, f"required: {out!r}"
        out = s.run(raw("GET", "/latest/meta-data/instance-id",
                        "X-aws-ec2-metadata-token: $T\\r\\n") + " | tail -n 1; echo", "END9")
        assert "i-0nimbus42" in out, f"required with token: {out!r}"

        # New data, live.
        api.ok("PUT", "/mmds", {"meta-data": {"instance-id": "i-0changed"},
                                "user-data": "IyEvYmluL3NoCmVjaG8gaGVsbG8K"})
        out = s.run(f"wget -q -O - --header \"X-aws-ec2-metadata-token: $T\" {MD}/user-data",
                    "END10")
        assert "echo hello" in out, f"user-data: {out!r}"
        assert api.ok("GET", "/mmds")["meta-data"]["instance-id"] == "i-0changed"

        s.send("poweroff")
        status = s.wait(60)
        assert status == 0, f"nimbus vmm exited with {status}"
        print(f"PASS (boot {boot:.1f} s, all {time.monotonic() - t0:.1f} s)")
        return 0
    except Exception as e:  # noqa: BLE001
        s.abandon()
        print(f"\nFAIL: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
