#!/usr/bin/env python3
"""SIGTERM stops a running VM in order: exit status 143 and a message, no crash.

    signal_stop.py NIMBUS
"""
import signal
import sys

from guest_session import READY, BOOT_TIMEOUT, Session


def main():
    s = Session([sys.argv[1], "run"])
    try:
        s.expect(READY, BOOT_TIMEOUT)
        s.proc.send_signal(signal.SIGTERM)
        status = s.wait(60)
        assert status == 128 + signal.SIGTERM, f"exit status {status}, want 143"
        assert b"stopped by signal 15" in s.out, "no message about the signal"
    except Exception as e:
        s.abandon()
        print(f"\nFAIL: {e}")
        return 1
    print("PASS: SIGTERM stopped the VM with status 143")
    return 0


if __name__ == "__main__":
    sys.exit(main())
