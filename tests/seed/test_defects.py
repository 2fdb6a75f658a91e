"""Regressions found by driving the seed tools' routes and pyirqbalancectl as a new user."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime
from pathlib import Path

from pyirqbalance.api import ctl
from pyirqbalance.api.client import ApiClient
from pyirqbalance.api.overrides import OverrideRegistry
from pyirqbalance.api.wiring import _PinnedIrqs
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.history.records import iso_time
from tests.controlsocket import ask
from tests.integration.test_api import Rig
from tests.seed.live import LiveDaemon
from tests.waiting import wait_until

#: a_desktop4's timer-less legacy IRQ 9 (no PCI device): never pinned unless a test pins it.
ACPI = 9


def ctl_run(rig: Rig, *argv: str, tmp_path: Path) -> tuple[int, str]:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("{}\n")
    out = io.StringIO()
    code = ctl.main(["--config", str(cfg), "--url", rig.url, *argv], out=out)
    return code, out.getvalue()


def test_report_current_is_smp_affinity_now(tmp_path, fake_machine, counter_simulator):
    """The report's CURRENT and ACTION follow smp_affinity, not the last activation's view."""
    rig = Rig(tmp_path, fake_machine, counter_simulator)
    try:
        rig.run_pass()
        rig.run_pass()
        d = {x.irq: x for x in rig.balancer.decisions()}[126]
        target = d.target_mask
        assert target is not None and target.bit_count() == 1     # storage: one core
        # Someone (the kernel, a script) puts IRQ 126 where the balancer wants it.
        Path(rig.root.proc("irq", "126", "smp_affinity")).write_text(f"{target:08x}\n")
        item = {i["irq"]: i for i in rig.api.get("/api/v1/report").data["irqs"]}[126]
        want = ",".join(str(c) for c in range(8) if target >> c & 1)
        assert (item["current"], item["recommended"], item["action"]) == (want, want, "keep")
        other = 0x1 if target != 0x1 else 0x2
        Path(rig.root.proc("irq", "126", "smp_affinity")).write_text(f"{other:08x}\n")
        item = {i["irq"]: i for i in rig.api.get("/api/v1/report").data["irqs"]}[126]
        assert item["current"] == str(other.bit_length() - 1) and item["action"] == "move"
    finally:
        rig.close()


def _twin(fake_machine, counter_simulator) -> tuple[object, Balancer]:
    root, machine = fake_machine("a_desktop4")
    sim = counter_simulator(root, machine)
    balancer = Balancer(root)
    balancer.start()
    return sim, balancer


def _others(balancer: Balancer, sim, irq: int) -> list[tuple[int, str]]:
    sim.advance()
    report = balancer.run_pass()
    assert not report.rescanned
    return sorted((w.irq, w.text) for w in report.writes if w.irq != irq)


def test_a_pin_and_a_release_touch_only_that_irq(fake_machine, counter_simulator):
    """Two identical machines and balancers; one pins and releases IRQ 127 (the NIC's link
    vector, which never fires, so taking it out of the tree moves no load). The other IRQs
    must be written exactly as on the twin that pinned nothing. (The balancer keeps moving
    IRQs on this machine: a forced rescan, as pins did before, makes the two differ at
    once -- it places every IRQ again from cycle 0.)"""
    sim_a, a = _twin(fake_machine, counter_simulator)
    sim_b, b = _twin(fake_machine, counter_simulator)
    registry = OverrideRegistry()
    pins = _PinnedIrqs(registry, b, b.root, logging.getLogger("test"))
    registry.on_change = pins.on_change
    for _ in range(3):
        assert _others(a, sim_a, 127) == _others(b, sim_b, 127)
    registry.set(127, 0x1)
    assert not b.need_rescan and b.is_banned(127)
    assert 127 in b.settings.banned_irqs                 # a later rescan keeps it pinned
    for _ in range(4):
        assert _others(a, sim_a, 127) == _others(b, sim_b, 127)
    registry.release(127)
    assert not b.need_rescan and not b.is_banned(127)
    for _ in range(3):
        assert _others(a, sim_a, 127) == _others(b, sim_b, 127)
    assert 127 in {d.irq for d in b.decisions() if d.target_mask is not None}


def test_a_pin_outlives_new_settings(fake_machine, counter_simulator):
    """A reload (SIGHUP, the control socket) replaces the settings; pins stay banned."""
    sim, balancer = _twin(fake_machine, counter_simulator)
    registry = OverrideRegistry()
    pins = _PinnedIrqs(registry, balancer, balancer.root, logging.getLogger("test"))
    registry.on_change = pins.on_change
    registry.set(129, 0x1)
    balancer.update_settings(balancer.settings._replace(banned_irqs=(4,)))
    assert balancer.settings.banned_irqs == (4, 129)
    balancer.force_rescan()
    sim.advance()
    report = balancer.run_pass()
    assert report.rescanned and balancer.is_banned(129) and balancer.is_banned(4)
    assert 129 not in {w.irq for w in report.writes}
    registry.release(129)
    assert balancer.settings.banned_irqs == (4,)


def test_cpu_summary_of_a_missing_cpu_exits_1(tmp_path, fake_machine, counter_simulator,
                                              capsys):
    rig = Rig(tmp_path, fake_machine, counter_simulator)
    try:
        rig.run_pass()
        code, text = ctl_run(rig, "cpu-summary", "--cpus", "7", "--seconds", "0",
                             tmp_path=tmp_path)
        assert code == 1 and text == ""
        assert "--cpus 7: none of these CPUs is in /proc/interrupts (CPUs 0, 1, 2, 3)" in (
            capsys.readouterr().err)
    finally:
        rig.close()


def test_summary_start_in_mmddhhmm(tmp_path, fake_machine, counter_simulator, capsys):
    rig = Rig(tmp_path, fake_machine, counter_simulator)
    try:
        rig.run_pass()
        code, text = ctl_run(rig, "--json", "summary", "--start=12041709", "--stop=12041710",
                             tmp_path=tmp_path)
        assert code == 0, capsys.readouterr().err
        year = datetime.now().year
        data = json.loads(text)
        assert data["start"] == iso_time(datetime(year, 12, 4, 17, 9).timestamp())
        assert data["stop"] == iso_time(datetime(year, 12, 4, 17, 10).timestamp())
        code, _ = ctl_run(rig, "summary", "--start=13041709", tmp_path=tmp_path)
        assert code == ctl.EXIT_USAGE
        assert "start: '13041709' is not a valid mmddHHMM date" in capsys.readouterr().err
    finally:
        rig.close()


def test_seed_routes_report_kernel_refusals(tmp_path, fake_machine, counter_simulator):
    """RefusingRoot: IRQ 127 answers EIO (managed), 122 EINVAL; neither is pinned."""
    rig = Rig(tmp_path, fake_machine, counter_simulator, local_root_writes=True)
    try:
        anon = ApiClient(rig.url)        # no token: this test runs as root on loopback
        r = anon.request("PUT", "/set_affinity/127?cpu=1")
        assert r.status == 409 and "EIO" in r.data["message"]
        r = anon.request("PUT", "/irqsummary/122", body={"cpu": "1"})
        assert r.status == 422 and "EINVAL" in r.data["message"]
        assert rig.overrides.items() == {}
        r = anon.request("PUT", "/irqsummary/128", body={"cpus": "2-3"})
        assert r.status == 200 and r.data["new affinity"] == "0000000c"
        assert rig.overrides.items() == {128: 0xC}
    finally:
        rig.close()


def _control(tree: Path, command: bytes) -> bytes:
    """One request on the daemon's irqbalance control socket, as irqbalance-ui sends it."""
    path = wait_until(lambda: next(tree.joinpath("run", "irqbalance").glob("irqbalance*.sock"),
                                   None), 30, what="the control socket")
    return ask(str(path), command, timeout=30)


def test_a_released_pin_does_not_stay_a_socket_ban(tmp_path):
    """A pin is the balancer's own ban: after irqbalance-ui's "settings ban irqs", releasing the
    pin leaves only the socket's list banned (docs/uisocket.md: setup lists the banned IRQs)."""
    daemon = LiveDaemon(tmp_path)
    try:
        daemon.wait_ready()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _ = daemon.request("PUT", f"/irqsummary/{ACPI}", data=b"cpu=1", headers=form)
        assert status == 200
        assert _control(daemon.tree, b"settings ban irqs 7") == b""
        both = f"IRQ 7 LOAD 0 DIFF 0 CLASS 0 IRQ {ACPI} LOAD 0 DIFF 0 CLASS 0 ".encode()
        wait_until(lambda: both in _control(daemon.tree, b"setup"), 30, what="both IRQs banned")
        status, _ = daemon.request("DELETE", f"/irqsummary/{ACPI}")
        assert status == 200
        only = b"SLEEP 1 IRQ 7 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"
        wait_until(lambda: _control(daemon.tree, b"setup") == only, 30,
                   what="only the socket's ban left")
    finally:
        daemon.close()
