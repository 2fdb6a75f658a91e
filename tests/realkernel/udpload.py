"""Bounded UDP traffic between the guest's own addresses (never a host address).

    udpload.py send ADDR SECONDS [RATE]  # 1200-byte datagrams to ADDR:9999 (RATE per second)
    udpload.py sink ADDR SECONDS         # receive on ADDR:9999 for SECONDS

Prints the datagram count. Run inside the QEMU guest only (tests/realkernel/inguest.py).
"""

from __future__ import annotations

import socket
import sys
import time

PORT = 9999


def main(mode: str, addr: str, seconds: float, rate: float = 0) -> int:
    end = time.monotonic() + seconds
    count = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if mode == "sink":
            s.bind((addr, PORT))
            s.settimeout(0.5)
            while time.monotonic() < end:
                try:
                    s.recv(2048)
                    count += 1
                except OSError:
                    pass
        else:
            payload = b"x" * 1200
            pause = 1 / rate if rate else 0
            while time.monotonic() < end:
                try:
                    s.sendto(payload, (addr, PORT))
                    count += 1
                except OSError:  # the queue is full or the peer not there yet
                    time.sleep(0.001)
                if pause:
                    time.sleep(pause)
    print(f"{mode} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]),
                  float(sys.argv[4]) if len(sys.argv) > 4 else 0))
