"""Loopback load test: API latency and pass regularity under hostile clients (< 60 s).

Starts the real daemon (``python -m pyirqbalance --foreground --interval=1``)
on the fake a_desktop4 machine of the test suite (counters moving, history,
API on 127.0.0.1 and metrics on), then, after three passes of warm-up, for
``--phase`` seconds each:

1. no load;
2. 200 slow HTTP clients, each sending one header byte a second (cut off by
   the daemon after 10 s, reconnected here so that 200 are always there);
3. 200 idle control-socket clients (closed by the daemon after 10 s,
   reconnected likewise);
4. 8 sampling readers (``GET /get_interrupt_by_cpu?second=60``, sent again
   when answered) and 4 clients that pipeline three
   ``GET /get_current_distribution`` each and never read (reconnected when
   the daemon cuts them off), with /proc/interrupts padded to 6 MB so that
   each of those replies is as large as on a 256-CPU machine.

In every phase ``GET /api/v1/health`` is sent 10 times a second on a new
connection; the table gives its p50/p99/max latency and the passes'
spacing (the ``last_pass`` time health reports) against ``--interval``. The
three slowest health requests of each phase, with when they were sent (seconds
into the phase), go to stderr: a stall at 0.00 s comes from the phase's clients
connecting.

    sudo python3 benchmarks/load_api.py            # root: the control socket needs it
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile.conftest import LiveDaemon  # noqa: E402

CLIENTS = 200
HEADER = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100


class Crowd:
    """``n`` connections made by ``connect``, each fed by ``feed`` once a second, kept at ``n``."""

    def __init__(self, n: int, connect: Callable[[], socket.socket],
                 feed: Callable[[socket.socket, int], None]) -> None:
        self.n, self.connect, self.feed = n, connect, feed
        self.socks = [connect() for _ in range(n)]
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _alive(self, s: socket.socket) -> bool:
        try:
            return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(1.0):
            tick += 1
            for i, s in enumerate(self.socks):
                if not self._alive(s):
                    s.close()
                    try:
                        self.socks[i] = s = self.connect()
                    except OSError:  # the daemon is stopping, or its backlog is full
                        continue
                    self.reconnects += 1
                try:
                    self.feed(s, tick)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for s in self.socks:
            s.close()


def slow_http(port: int) -> Crowd:
    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    def feed(s: socket.socket, tick: int) -> None:
        s.send(HEADER[tick % len(HEADER):][:1], socket.MSG_DONTWAIT)

    return Crowd(CLIENTS, connect, feed)


def idle_control(path: str) -> Crowd:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)  # blocking: waits while the listen backlog is full
        s.settimeout(5)
        return s

    return Crowd(CLIENTS, connect, lambda s, tick: None)


#: Bytes added to /proc/interrupts in the phase of pipelining clients.
PAD = 6_000_000
SAMPLERS, PIPELINERS = 8, 4


def _drain(s: socket.socket, tick: int) -> None:
    """Read what has arrived (the sampling replies), so that a closed connection shows."""
    while True:
        try:
            if not s.recv(65536, socket.MSG_DONTWAIT):
                return
        except OSError:
            return


def readers(port: int) -> tuple[Crowd, Crowd]:
    def sampler() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /get_interrupt_by_cpu?second=60 HTTP/1.0\r\nHost: x\r\n\r\n")
        return s

    def pipeliner() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /get_current_distribution HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        return s

    return (Crowd(SAMPLERS, sampler, _drain),
            Crowd(PIPELINERS, pipeliner, lambda s, tick: None))


class _Pair:
    def __init__(self, crowds: tuple[Crowd, Crowd]) -> None:
        self.crowds = crowds

    def close(self) -> None:
        for c in self.crowds:
            c.close()


def measure(port: int, seconds: float,
            at: list[tuple[float, float]] | None = None) -> tuple[list[float], set[str], int]:
    """Health latencies (ms), the distinct last_pass times seen, failed requests.

    ``at`` gets (seconds into the phase when sent, latency ms) of each request.
    """
    latencies: list[float] = []
    passes: set[str] = set()
    failed = 0
    begin = time.monotonic()
    end = begin + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/api/v1/health")
            body = json.loads(conn.getresponse().read())
            conn.close()
        except (OSError, ValueError):
            failed += 1
            continue
        latencies.append((time.perf_counter() - started) * 1e3)
        if at is not None:
            at.append((time.monotonic() - begin - latencies[-1] / 1e3, latencies[-1]))
        if body.get("last_pass"):
            passes.add(body["last_pass"])
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))
    return latencies, passes, failed


def spacing(passes: set[str]) -> list[float]:
    times = sorted(datetime.fromisoformat(p.replace("Z", "+00:00")).timestamp() for p in passes)
    return [b - a for a, b in itertools.pairwise(times)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", type=float, default=10.0, help="seconds per phase (default 10)")
    args = ap.parse_args()
    interval = 1.0
    with tempfile.TemporaryDirectory(prefix="load-api-") as tmp:
        d = LiveDaemon(Path(tmp))
        d.start()
        while d.passes() < 3:  # past start-up: the first passes build and settle the tree
            time.sleep(0.2)
        rows = []
        all_gaps: list[float] = []
        try:
            phases: list[tuple[str, Callable[[], Crowd | _Pair | None]]] = [
                ("no load", lambda: None),
                (f"{CLIENTS} slow HTTP clients", lambda: slow_http(d.port or 0)),
            ]
            if os.geteuid() == 0:
                phases.append((f"{CLIENTS} idle control-socket clients",
                               lambda: idle_control(str(d.socket_path()))))

            def heavy() -> _Pair:
                d.kernel.edit = lambda text: text + " " * PAD + "\n"
                return _Pair(readers(d.port or 0))

            phases.append((f"{SAMPLERS} sampling readers + {PIPELINERS} pipelining non-readers",
                           heavy))
            for name, make in phases:
                crowd = make()
                at: list[tuple[float, float]] = []
                try:
                    lat, passes, failed = measure(d.port or 0, args.phase, at)
                finally:
                    if crowd is not None:
                        crowd.close()
                slowest = sorted(at, key=lambda x: -x[1])[:3]
                print(f"{name}: slowest health requests (s into the phase, ms): "
                      + ", ".join(f"{t:.2f} s {ms:.0f}" for t, ms in slowest), file=sys.stderr)
                gaps = spacing(passes)
                all_gaps += gaps
                q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
                drift = max((abs(g - interval) / interval for g in gaps), default=float("nan"))
                rows.append((name, len(lat), failed, q[49], q[98], max(lat, default=0.0),
                             statistics.mean(gaps) if gaps else float("nan"), drift * 100))
        finally:
            code = d.stop()
    print("| load | requests | failed | p50 ms | p99 ms | max ms | mean pass spacing s "
          "| worst drift % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, failed, p50, p99, mx, mean, drift in rows:
        print(f"| {name} | {n} | {failed} | {p50:.1f} | {p99:.1f} | {mx:.1f} | {mean:.3f} "
              f"| {drift:.1f} |")
    worst = max((abs(g - interval) / interval for g in all_gaps), default=0.0)
    print(f"daemon exit status {code}; worst pass spacing drift {worst * 100:.1f} % "
          f"of --interval={interval:g}")
    return 0 if code == 0 and worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
