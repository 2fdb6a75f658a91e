"""REST API end to end: a balancer on a mkfake tree, the counter simulator, history, waitress.

Each test gets a running :class:`ApiService` on 127.0.0.1:<ephemeral> and a unix
socket in tmp_path, a Balancer writing only the fake tree, a HistoryRecorder,
and a token file; everything is stopped at teardown.
"""

from __future__ import annotations

import errno
import json
import math
import os
import time
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyirqbalance.api.client import ApiClient
from pyirqbalance.api.metrics import Metrics
from pyirqbalance.api.overrides import OverrideRegistry
from pyirqbalance.api.server import (
    ApiConfig,
    ApiConfigError,
    ApiContext,
    ApiService,
    LiveState,
    load_token,
)
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings, PassReport
from pyirqbalance.history import HistoryConfig, HistoryRecorder, HistoryStore
from pyirqbalance.kernel.procirq import WriteResult, WriteStatus
from pyirqbalance.kernel.sysroot import SysRoot

TOKEN = "s3cret-token"
#: a_desktop4: enp3s0-TxRx-2 fires 1500 per pass; it is banned so it stays on one CPU.
WRAP_IRQ = 130
WRAP_RATE = 1500


class RefusingRoot(SysRoot):
    """The fake tree, with the kernel's refusals for two IRQs (managed: EIO, bad mask: EINVAL)."""

    REFUSE: ClassVar[dict[str, int]] = {"/irq/127/": errno.EIO, "/irq/122/": errno.EINVAL}

    def write(self, path: str, data: str) -> int:  # type: ignore[override]
        for part, err in self.REFUSE.items():
            if part in path:
                return err
        return SysRoot.write(path, data)


class Rig:
    """Balancer + simulator + history + API on one fake machine."""

    def __init__(self, tmp_path: Path, fake_machine, counter_simulator, *, token: bool = True,
                 per_irq_metrics: int = 256, local_root_writes: bool = False) -> None:
        base, self.machine = fake_machine("a_desktop4")
        self.root = RefusingRoot(base.base)
        self.set_boot("boot-1", 1_700_000_000)
        self.sim = counter_simulator(self.root, self.machine)
        # Start IRQ 130 close to 2**32 so the simulated passes wrap its counter.
        cpu = self.sim.state.eff[WRAP_IRQ]
        self.sim.state.counts[WRAP_IRQ] = {cpu: 2**32 - 2000}
        self.render()
        settings = BalancerSettings(banned_irqs=(WRAP_IRQ,))
        # keep_text: as api.wiring.build_extras sets it for history/API/metrics
        self.balancer = Balancer(self.root, settings, keep_text=True)
        self.balancer.start()
        self.history = HistoryConfig(path=str(tmp_path / "history.sqlite"), resolution_s=1e-3)
        self.recorder = HistoryRecorder(self.root, self.history, read_when_idle=False)
        self.recorder.start()
        token_path = None
        if token:
            token_path = tmp_path / "token"
            token_path.write_text(TOKEN + "\n")
            token_path.chmod(0o600)
        self.metrics = Metrics(self.balancer, per_irq_limit=per_irq_metrics)
        self.overrides = OverrideRegistry(self.history.path)
        self.ctx = ApiContext(
            root=self.root, live=LiveState(self.root), balancer=self.balancer,
            overrides=self.overrides, history=self.history,
            history_error=lambda: self.recorder.error,
            token=load_token(str(token_path)) if token_path else None, metrics=self.metrics,
            # The suite runs as root: token-less root writes are tested in tests/seed/.
            local_root_writes=local_root_writes,
        )
        self.sock = tmp_path / "api.sock"
        self.service = ApiService(self.ctx, ApiConfig(listen=("127.0.0.1:0", f"unix:{self.sock}"),
                                                      per_irq_metrics=per_irq_metrics))
        self.service.start()
        self.url = self.service.addresses[0]
        self.api = ApiClient(self.url, token=TOKEN)
        self.anon = ApiClient(self.url)
        self.passes = 0

    def set_boot(self, boot_id: str, btime: int) -> None:
        path = Path(self.root.proc("sys", "kernel", "random", "boot_id"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(boot_id + "\n")
        self.btime = btime

    def render(self) -> None:
        """Rewrite /proc with 32-bit counters (the kernel's unsigned int) and our btime."""
        for counts in self.sim.state.counts.values():
            for cpu in counts:
                counts[cpu] %= 2**32
        self.sim.render()
        stat = Path(self.root.proc("stat"))
        stat.write_text(stat.read_text().replace("btime 1700000000", f"btime {self.btime}"))

    def run_pass(self, advance: bool = True) -> None:
        if advance:
            self.sim.apply_writes()
            self.sim.state.advance(1.0)
            self.render()
        report = self.balancer.run_pass()
        self.service.on_pass(report)
        self.recorder.on_pass(report)
        assert self.recorder.flush()
        self.passes += 1

    def reboot(self, boot_id: str) -> None:
        """Counters restart at 0 under a new boot id and boot time."""
        self.set_boot(boot_id, math.ceil(time.time()))  # /proc/stat btime is whole seconds
        for irq in self.sim.state.counts:
            self.sim.state.counts[irq] = {}
        self.render()

    def close(self) -> None:
        self.service.stop()
        self.recorder.stop()


@pytest.fixture
def rig(tmp_path, fake_machine, counter_simulator):
    r = Rig(tmp_path, fake_machine, counter_simulator)
    try:
        yield r
    finally:
        r.close()


def rates(machine) -> dict[int, int]:
    return {n: int(q.get("rate", 0)) for n, q in machine.irqs.items() if q.get("rate", 0) > 0}


# --------------------------------------------------------------------------
# history through the API: reboot and wrap
# --------------------------------------------------------------------------


def test_window_sums_across_a_wrap_and_a_reboot(rig: Rig):
    rig.run_pass(advance=False)                       # baseline of boot-1
    start = time.time()
    for _ in range(3):                                # +1500 x3 on IRQ 130: wraps at the 2nd
        rig.run_pass()
    rig.reboot("boot-2")
    rig.sim.state.advance(1.0)
    rig.render()
    rig.run_pass(advance=False)                       # baseline of boot-2: one pass since boot
    for _ in range(2):
        rig.run_pass()
    r = rig.api.get("/api/v1/irqsummary", start=str(start), stop=str(time.time() + 1))
    assert r.status == 200, r.data
    data = r.data
    assert data["source"] == "history"
    assert [b["boot_id"] for b in data["boots"]] == ["boot-1", "boot-2"]
    assert data["reboots"] == 1
    assert data["wraps"] == 1
    totals = {i["irq"]: i["total"] for i in data["irqs"]}
    assert totals[WRAP_IRQ] == 6 * WRAP_RATE          # 3 passes per boot, wrap included
    expected = rates(rig.machine)
    assert totals == {irq: 6 * rate for irq, rate in expected.items()}
    assert data["total"] == 6 * sum(expected.values())
    # The same window, ISO-8601 and under the versioned prefix.
    iso = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
           + f".{int(start % 1 * 1e6):06d}+00:00")
    again = rig.api.get("/api/v1/irqsummary", start=iso, stop=str(time.time() + 1)).data
    assert {i["irq"]: i["total"] for i in again["irqs"]} == totals


def test_history_store_is_readable_after_the_run(rig: Rig):
    for _ in range(3):
        rig.run_pass()
    rig.close()
    with HistoryStore(rig.history.path) as store:
        assert store.integrity_check() == "ok"
        assert [b.boot_id for b in store.boots()] == ["boot-1"]
        meta = store.irq_meta(WRAP_IRQ)
        assert meta is not None and meta.name == "enp3s0-TxRx-2"


def test_summary_without_parameters_is_since_boot(rig: Rig):
    rig.run_pass()
    data = rig.api.get("/api/v1/irqsummary").data
    assert data["source"] == "live" and data["boots"][0]["boot_id"] == "boot-1"
    text = Path(rig.root.proc("interrupts")).read_text().splitlines()
    row = next(line for line in text if line.strip().startswith("131:"))
    totals = {i["irq"]: i["total"] for i in data["irqs"]}
    assert totals[131] == sum(int(x) for x in row.split()[1:5])


@pytest.mark.parametrize("params, parameter", [
    ({"start": "yesterday"}, "start"),
    ({"start": "-5x"}, "start"),
    ({"stop": "nan"}, "stop"),
    ({"start": "200", "stop": "100"}, "stop"),
])
def test_summary_bad_times(rig: Rig, params, parameter):
    rig.run_pass()
    r = rig.api.get("/api/v1/irqsummary", **params)
    assert r.status == 400 and r.data["parameter"] == parameter


# --------------------------------------------------------------------------
# per-IRQ view and changes
# --------------------------------------------------------------------------


def test_irq_view(rig: Rig):
    rig.run_pass()
    data = rig.api.get("/api/v1/irqsummary/128").data
    assert data["name"] == "enp3s0-TxRx-0"
    aff = Path(rig.root.proc("irq", "128", "smp_affinity")).read_text().strip()
    assert data["smp_affinity"].lstrip("0") == aff.replace(",", "").lstrip("0")
    assert data["decision"]["class"] == "ethernet"
    assert data["decision"]["reason"]
    assert rig.api.get("/api/v1/irqsummary/130").data["decision"]["class"] == "banned"


@pytest.mark.parametrize("path, status, parameter", [
    ("/api/v1/irqsummary/abc", 400, "irq"),
    ("/api/v1/irqsummary/-1", 400, "irq"),
    ("/api/v1/irqsummary/4000", 404, "irq"),
    ("/api/v1/irqsummary/4000", 404, "irq"),
])
def test_irq_view_bad(rig: Rig, path, status, parameter):
    r = rig.api.get(path)
    assert r.status == status and r.data["parameter"] == parameter


def test_set_and_release(rig: Rig):
    rig.run_pass()
    r = rig.api.request("PUT", "/api/v1/irqsummary/128", body={"cpus": "2-3"})
    assert r.status == 200, r.data
    assert Path(rig.root.proc("irq", "128", "smp_affinity")).read_text() == "0000000c"
    assert rig.overrides.items() == {128: 0xC}
    assert rig.api.get("/api/v1/health").data["overrides"] == {"128": "2-3"}
    assert rig.api.get("/api/v1/irqsummary/128").data["override"] == {"mask": "0000000c",
                                                                      "cpus": "2-3"}
    with HistoryStore(rig.history.path) as store:
        assert store.overrides() == {128: 0xC}        # survives a restart
    r = rig.api.request("PUT", "/api/v1/irqsummary/129", body={"mask": "1"})
    assert r.status == 200 and r.data["cpus"] == "0"
    r = rig.api.request("PUT", "/api/v1/set_affinity/131?cpu=2")
    assert r.status == 200 and r.data["cpus"] == "1"
    assert rig.api.request("DELETE", "/api/v1/irqsummary/128").status == 200
    assert rig.overrides.items() == {129: 0x1, 131: 0x2}
    r = rig.api.request("DELETE", "/api/v1/irqsummary/128")
    assert r.status == 404 and "no override" in r.data["error"]


@pytest.mark.parametrize("body, parameter", [
    ({"cpus": "0-9"}, "cpus"),       # CPUs 4-9 are not online
    ({"cpus": "x"}, "cpus"),
    ({"cpus": ""}, "cpus"),          # names no CPU
    ({"mask": "zz"}, "mask"),
    ({"mask": 15}, "mask"),
    ({"cpus": "1", "mask": "1"}, "body"),
    ({}, "body"),
    (["cpus"], "body"),
])
def test_set_bad_body(rig: Rig, body, parameter):
    r = rig.api.request("PUT", "/api/v1/irqsummary/128", body=body)
    assert r.status == 400 and r.data["parameter"] == parameter, r.data
    assert rig.overrides.items() == {}


def test_set_affinity_needs_cpu(rig: Rig):
    for query, status in (("", 400), ("?cpu=", 400), ("?cpu=g", 400), ("?cpu=10", 400)):
        r = rig.api.request("PUT", f"/api/v1/set_affinity/128{query}")
        assert r.status == status and r.data["parameter"] == "cpu", (query, r.data)


def test_kernel_refusals(rig: Rig):
    r = rig.api.request("PUT", "/api/v1/irqsummary/127", body={"cpus": "1"})
    assert r.status == 409 and "EIO" in r.data["error"]
    r = rig.api.request("PUT", "/api/v1/set_affinity/122?cpu=1")
    assert r.status == 422 and "EINVAL" in r.data["error"]
    assert rig.overrides.items() == {}


def test_writes_need_the_token(rig: Rig):
    for method, path, body in (("PUT", "/api/v1/irqsummary/128", {"cpus": "1"}),
                               ("PUT", "/api/v1/set_affinity/128?cpu=1", None),
                               ("DELETE", "/api/v1/irqsummary/128", None)):
        r = rig.anon.request(method, path, body=body)
        assert r.status == 401, (method, path)
        wrong = ApiClient(rig.url, token="nope").request(method, path, body=body)
        assert wrong.status == 401
    assert Path(rig.root.proc("irq", "128", "smp_affinity")).read_text().strip() != "00000002"


def test_writes_disabled_without_token_file(tmp_path, fake_machine, counter_simulator):
    rig = Rig(tmp_path, fake_machine, counter_simulator, token=False)
    try:
        r = rig.api.request("PUT", "/api/v1/irqsummary/128", body={"cpus": "1"})
        assert r.status == 403 and "token_file" in r.data["error"]
        assert rig.api.get("/api/v1/health").data["writes_enabled"] is False
    finally:
        rig.close()


def test_token_file_must_be_root_only(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text("abc\n")
    path.chmod(0o644)
    with pytest.raises(ApiConfigError, match="readable by root only"):
        load_token(str(path))
    path.chmod(0o600)
    assert load_token(str(path)) == "abc"
    with pytest.raises(ApiConfigError, match="No such file"):
        load_token(str(tmp_path / "none"))


# --------------------------------------------------------------------------
# seed endpoints, v1 extras, errors
# --------------------------------------------------------------------------


def test_current_distribution(rig: Rig):
    rig.run_pass()
    raw = rig.api.get("/api/v1/get_current_distribution", format="raw")
    assert raw.status == 200
    assert raw.data == Path(rig.root.proc("interrupts")).read_text()
    data = rig.api.get("/api/v1/get_current_distribution").data
    assert data["cpus"] == [0, 1, 2, 3]
    row = next(r for r in data["rows"] if r["irq"] == 126)
    assert row["name"] == "ahci[0000:00:17.0]" and row["total"] == sum(row["counts"])
    bad = rig.api.get("/api/v1/get_current_distribution", format="xml")
    assert bad.status == 400 and bad.data["parameter"] == "format"


def test_interrupt_by_cpu(rig: Rig):
    rig.run_pass()
    time.sleep(0.05)
    rig.run_pass()
    eff = rig.sim.state.eff[WRAP_IRQ]
    data = rig.api.get("/api/v1/get_interrupt_by_cpu", cpu=eff, second=0.04).data
    assert data["source"] == "live"
    got = {i["irq"]: i["count"] for i in data["irqs"]}
    assert got[WRAP_IRQ] == WRAP_RATE                 # one pass: IRQ 130 stays on its CPU
    assert data["total"] == sum(got.values())


@pytest.mark.parametrize("params, parameter", [
    ({}, "cpu"), ({"cpu": "x"}, "cpu"), ({"cpu": 0, "second": "-3"}, "second"),
    ({"cpu": 0, "second": "abc"}, "second"),
])
def test_interrupt_by_cpu_bad(rig: Rig, params, parameter):
    r = rig.api.get("/api/v1/get_interrupt_by_cpu", **params)
    assert r.status == 400 and r.data["parameter"] == parameter
    r = rig.api.get("/api/v1/get_interrupt_by_cpu", cpu=7)   # a_desktop4 has CPUs 0-3
    assert r.status == 404 and r.data["parameter"] == "cpu"


def test_topology_and_health(rig: Rig):
    rig.run_pass()
    topo = rig.api.get("/api/v1/topology").data
    assert topo["cpus"]["online"] == "0-3"
    assert topo["topology"][0]["type"] == "node"
    health = rig.api.get("/api/v1/health").data
    assert health["status"] == "ok" and health["cycle"] == 1
    assert health["history"] == {"enabled": True, "path": rig.history.path, "error": None}


def test_report_endpoint(rig: Rig):
    rig.run_pass()
    data = rig.api.get("/api/v1/report", threshold="50").data
    decisions = {d.irq: d for d in rig.balancer.decisions()}
    for item in data["irqs"]:
        d = decisions[item["irq"]]
        assert item["reason"] == d.reason
    for bad, param in (({"threshold": "101"}, "threshold"), ({"group": "rack"}, "group")):
        r = rig.api.get("/api/v1/report", **bad)
        assert r.status == 400 and r.data["parameter"] == param


def test_unknown_route_and_method_are_json(rig: Rig):
    r = rig.api.get("/nope")
    assert r.status == 404 and "error" in r.data
    r = rig.api.request("POST", "/api/v1/irqsummary")
    assert r.status == 405 and "error" in r.data


def test_internal_error_has_no_traceback(rig: Rig, monkeypatch):
    monkeypatch.setattr(rig.balancer, "decisions", lambda: 1 / 0)
    r = rig.api.get("/api/v1/irqsummary/128")
    assert r.status == 500
    assert "ZeroDivisionError" in r.data["error"] and "Traceback" not in json.dumps(r.data)


def test_unix_socket_listener(rig: Rig):
    assert oct(os.stat(rig.sock).st_mode & 0o777) == "0o600"
    client = ApiClient(f"unix:{rig.sock}", token=TOKEN)
    assert client.get("/api/v1/health").data["status"] == "ok"
    assert client.request("PUT", "/api/v1/irqsummary/128", body={"cpus": "3"}).status == 200


def test_stop_releases_the_listeners(tmp_path, fake_machine, counter_simulator):
    rig = Rig(tmp_path, fake_machine, counter_simulator)
    url, sock = rig.url, rig.sock
    rig.close()
    assert not sock.exists()
    with pytest.raises(Exception, match="cannot reach"):
        ApiClient(url, timeout=2).get("/api/v1/health")


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics(rig: Rig):
    rig.run_pass()
    rig.run_pass()
    r = rig.api.get("/metrics")
    assert r.status == 200
    fams = _families(r.data)
    assert fams and all(name.startswith("pyirqbalance_") for name in fams)
    assert fams["pyirqbalance_passes"].samples[0].value == 2
    durations = fams["pyirqbalance_pass_duration_seconds"].samples
    assert sum(s.name.endswith("_count") for s in durations) == 1
    # Per-CPU counts equal the column sums of the numbered rows of /proc/interrupts.
    lines = Path(rig.root.proc("interrupts")).read_text().splitlines()[1:]
    numbered = [line.split() for line in lines if line.split()[0].rstrip(":").isdigit()]
    per_cpu = {str(c): sum(int(f[1 + c]) for f in numbered) for c in range(4)}
    got = {s.labels["cpu"]: s.value for s in fams["pyirqbalance_cpu_interrupts"].samples
           if s.name.endswith("_total")}
    assert got == per_cpu
    rate = {s.labels["cpu"]: s.value
            for s in fams["pyirqbalance_cpu_interrupts_per_second"].samples}
    assert set(rate) == {"0", "1", "2", "3"} and sum(rate.values()) > 0
    irq = {s.labels["irq"]: s for s in fams["pyirqbalance_irq_interrupts"].samples
           if s.name.endswith("_total")}
    assert irq["128"].labels["name"] == "enp3s0-TxRx-0"
    # a_desktop4's devices report numa_node -1 (machine JSON comment).
    assert irq["128"].labels["class"] == "ethernet" and irq["128"].labels["node"] == "-1"
    assert irq["130"].labels["class"] == "banned"
    assert fams["pyirqbalance_resident_memory_bytes"].samples[0].value > 0
    # This process has at least stdin, stdout, stderr and the rig's files open.
    assert fams["pyirqbalance_open_fds"].samples[0].value >= 3
    assert fams["pyirqbalance_threads"].samples[0].value >= 1
    assert fams["pyirqbalance_process_cpu_seconds"].samples[0].value > 0
    cpu = [s.value for s in fams["pyirqbalance_pass_cpu_seconds"].samples
           if s.name.endswith("_total")]
    assert cpu and cpu[0] > 0


def test_metrics_cardinality_cap(tmp_path, fake_machine, counter_simulator):
    rig = Rig(tmp_path, fake_machine, counter_simulator, per_irq_metrics=3)
    try:
        rig.run_pass()
        fams = _families(rig.api.get("/metrics").data)
        series = [s for s in fams["pyirqbalance_irq_interrupts"].samples
                  if s.name.endswith("_total")]
        assert len(series) == 3
        assert fams["pyirqbalance_irq_series_dropped"].samples[0].value == len(rig.machine.irqs) - 3
    finally:
        rig.close()


def test_write_errors_by_errno(rig: Rig):
    rig.balancer.run_pass()  # the balancer itself writes; IRQ 127 is refused with EIO
    rig.metrics.on_pass(PassReport(5, False, writes=(
        WriteResult(127, "1", errno.EIO, WriteStatus.UNMANAGED),
        WriteResult(128, "2", 0, WriteStatus.OK)), duration_s=0.01))
    fams = _families(rig.metrics.render().decode())
    errs = {s.labels["errno"]: s.value for s in fams["pyirqbalance_affinity_write_errors"].samples
            if s.name.endswith("_total")}
    assert errs["EIO"] >= 1
    assert fams["pyirqbalance_irq_moves_last_pass"].samples[0].value == 1
