#!/usr/bin/env python3
"""Boots a Nimbus VM, drives its console like a person at the shell, and checks the result.

    guest_session.py NIMBUS [--cpus N] [--firmware F] [--expect-exit S] [--reboot-check]
                     [--workload CMD] [-- extra nimbus run args]

Waits for the guest's ready line, runs a few commands and checks their output (the number
of CPUs Linux brought online, arithmetic in the shell, a file written and read back),
and --workload's command (which must exit 0), then powers the guest off and checks
nimbus's exit status.
"""
import argparse
import os
import select
import subprocess
import sys
import time

READY = b"nimbus-guest: ready"
BOOT_TIMEOUT = 240  # seconds: generous, CI machines may be loaded
STEP_TIMEOUT = 60


class Session:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""

    def expect(self, needle, timeout):
        deadline = time.monotonic() + timeout
        start = len(self.out)
        while needle not in self.out[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {needle!r}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"nimbus exited (status {self.proc.wait()}) before {needle!r}")
            self.out += chunk
        return self.out[start:]

    def run(self, command, marker):
        """Types `command; echo MARKER` and returns what it printed before the marker."""
        self.proc.stdin.write(command.encode() + b"; echo " + marker.encode() + b"\n")
        self.proc.stdin.flush()
        # The marker appears twice: echoed as typed, then printed. Wait for the printed one.
        text = self.expect(b"\n" + marker.encode(), STEP_TIMEOUT)
        return text[: text.rfind(b"\n" + marker.encode())].decode(errors="replace")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def abandon(self, tail=3000):
        """After a failure: show the end of what the guest printed and kill nimbus."""
        sys.stdout.write(self.out.decode(errors="replace")[-tail:])
        if self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise TimeoutError("nimbus did not exit after poweroff")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                self.out += chunk
        return self.proc.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nimbus")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--firmware")
    ap.add_argument("--reboot-check", action="store_true",
                    help="reboot the guest once (it must come back) before powering off")
    ap.add_argument("--workload", help="a shell command to run in the guest (must exit 0)")
    ap.add_argument("--workload-timeout", type=int, default=STEP_TIMEOUT)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.extra = extra

    argv = [a.nimbus, "run", "--cpus", str(a.cpus)] + a.extra
    if a.firmware:
        argv += ["--firmware", a.firmware]
    s = Session(argv)
    t0 = time.monotonic()
    try:
        s.expect(READY, BOOT_TIMEOUT)
        print(f"ready after {time.monotonic() - t0:.1f} s", flush=True)
        if a.reboot_check:
            s.send("reboot -f")
            s.expect(b"reboot: Restarting system", STEP_TIMEOUT)
            s.expect(READY, BOOT_TIMEOUT)
            print("came back after reboot", flush=True)
        out = s.run("grep -c ^processor /proc/cpuinfo", "END1")
        cpus = int(out.strip().splitlines()[-1])
        assert cpus == a.cpus, f"guest sees {cpus} CPUs, want {a.cpus}"
        out = s.run("echo $((6 * 7))", "END2")
        assert "\n42" in out, f"shell arithmetic gave {out!r}"
        out = s.run("echo nimbus-was-here > /tmp/f && cat /tmp/f && uname -m", "END3")
        assert "nimbus-was-here" in out and "riscv64" in out, out
        if a.workload:
            t1 = time.monotonic()
            s.proc.stdin.write(f"{a.workload}; echo workload-status=$?; echo END4\n".encode())
            s.proc.stdin.flush()
            out = s.expect(b"\nEND4", a.workload_timeout).decode(errors="replace")
            assert "workload-status=0" in out, f"workload failed: {out!r}"
            print(f"workload done in {time.monotonic() - t1:.1f} s", flush=True)
        s.send("poweroff -f")
        status = s.wait(STEP_TIMEOUT)
        assert status == 0, f"nimbus exited with {status} after poweroff, want 0"
    except Exception as e:  # show what the guest printed
        s.abandon(4000)
        print(f"\nFAIL: {e}")
        return 1
    print(f"PASS: {a.cpus} CPU(s){' via ' + a.firmware if a.firmware else ''}, "
          f"{time.monotonic() - t0:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
