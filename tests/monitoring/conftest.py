"""A live daemon on a fake machine with an interrupt hot spot and a foreign writer.

One daemon for the module (it takes a few passes to build up): a_desktop4 from
mkfake, its counters driven by the hostile tier's fake kernel, plus

* a hot spot: CPU 0's irq time in /proc/stat grows by 90 % of the wall-clock
  time (``HOT_SHARE``), whatever the simulation adds;
* a foreign writer: the test writes a NIC queue's smp_affinity between passes,
  as another balancer would, until the daemon has counted ``FOREIGN_WRITES``.

After each pass it scrapes ``/metrics``; :class:`FleetDaemon` keeps every scrape.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.conftest import Kernel, LiveDaemon, wait_for

HOT_CPU = 0
HOT_SHARE = 0.9
#: a_desktop4: a NIC queue, balanced to a single CPU
FOREIGN_IRQ = 128
FOREIGN_WRITES = 3
USER_HZ = 100

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"


def promtool() -> str:
    """promtool's path; skips without it, fails in CI (where .ci/run installs it)."""
    path = shutil.which("promtool")
    if path is None:
        why = "promtool not installed (Debian package prometheus; .ci/run installs it)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(why)
        pytest.skip(why)
    return path


class HotKernel(Kernel):
    """The fake kernel, plus irq time on one CPU growing with the wall clock.

    The simulation renders /proc/stat every 0.25 s; the hot CPU's extra time is
    added to its latest rendering every 0.05 s, so a pass reads it at most that stale.
    """

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.started = time.monotonic()
        self.base: list[str] | None = None
        self._hot = threading.Thread(target=self._heat, name="hot-spot", daemon=True)

    def start(self) -> None:
        super().start()
        self._hot.start()

    def stop(self) -> None:
        super().stop()
        if self._hot.is_alive():
            self._hot.join(timeout=10)

    def step(self) -> None:
        super().step()
        with self.lock:
            self.base = Path(self.root.proc("stat")).read_text().splitlines(keepends=True)
            self._write_hot()

    def _heat(self) -> None:
        while not self._stop.wait(0.05):
            with self.lock:
                self._write_hot()

    def _write_hot(self) -> None:
        if self.base is None:
            return
        extra = int(HOT_SHARE * USER_HZ * (time.monotonic() - self.started))
        lines = list(self.base)
        for i, line in enumerate(lines):
            fields = line.split(" ")
            if fields[0] == f"cpu{HOT_CPU}":
                fields[6] = str(int(fields[6]) + extra)  # user nice system idle iowait irq
                lines[i] = " ".join(fields)
        path = Path(self.root.proc("stat"))
        tmp = path.with_suffix(".hot")
        tmp.write_text("".join(lines))
        os.replace(tmp, path)


class FleetDaemon(LiveDaemon):
    """The live daemon, scraped after each of its passes."""

    def __init__(self, base: Path) -> None:
        super().__init__(base, config=(
            "balancing:\n  placement: balanced\n"
            f"foreign_writes:\n  max_changes: {FOREIGN_WRITES}\n  window_s: 3600\n"))
        self.kernel = HotKernel(self.root, self.machine)
        self.scrapes: list[str] = []

    def scrape(self) -> str:
        status, text = self.get("/metrics")
        assert status == 200, text
        return str(text)

    def next_pass(self) -> None:
        """Wait for the next pass, then keep a scrape of it."""
        start = self.passes()
        assert wait_for(lambda: self.passes() > start), self.log()[-3000:]
        self.scrapes.append(self.scrape())

    def foreign_writes(self) -> int:
        return int(self.metric("pyirqbalance_foreign_writes_total") or 0)

    def write_foreign(self) -> None:
        """Another program changes the IRQ's smp_affinity to a CPU it is not on."""
        path = self.root.irq_file(FOREIGN_IRQ, "smp_affinity")
        with self.kernel.lock:
            current = int((self.root.try_read_text(path) or "1").strip().replace(",", ""), 16)
            other = 0x1 if current != 0x1 else 0x2
            with open(path, "w") as f:
                f.write(f"{other:x}\n")


@pytest.fixture(scope="module")
def fleet_daemon(tmp_path_factory) -> Iterator[FleetDaemon]:
    d = FleetDaemon(tmp_path_factory.mktemp("fleet"))
    try:
        d.start()
        for _ in range(2):
            d.next_pass()
        # Write, then wait two passes for the count; a write that landed between the
        # daemon's own write and its read-back is absorbed, so write again.
        for _ in range(10 * FOREIGN_WRITES):
            seen = d.foreign_writes()
            if seen >= FOREIGN_WRITES:
                break
            d.write_foreign()
            for _ in range(2):
                d.next_pass()
                if d.foreign_writes() > seen:
                    break
        assert d.foreign_writes() >= FOREIGN_WRITES, d.log()[-3000:]
        for _ in range(2):
            d.next_pass()
        yield d
    finally:
        d.stop()
