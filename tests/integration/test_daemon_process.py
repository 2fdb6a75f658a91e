"""The real ``python -m pyirqbalance`` process on a fake machine (--sysroot)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.controlsocket import ask
from tests.hermetic import pyirqbalance_argv
from tests.oracle import mkfake
from tests.waiting import DEFAULT_TIMEOUT_S, wait_until

ROOT = Path(__file__).resolve().parents[2]
MACHINE = ROOT / "tests" / "fixtures" / "irqbalance-1.9.2" / "a_desktop4.json"


def _tree(tmp_path: Path) -> Path:
    machine = mkfake.Machine(json.loads(MACHINE.read_text()))
    mkfake.build_tree(machine, str(tmp_path / "t"), force=True)
    return tmp_path / "t"


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("IRQBALANCE_ONESHOT", "IRQBALANCE_DEBUG", "IRQBALANCE_ARGS", "INVOCATION_ID"):
        env.pop(var, None)
    return subprocess.run(pyirqbalance_argv(*args), capture_output=True,
                          text=True, env=env, timeout=60, **kw)


def test_dry_run_json_explains_every_irq_and_writes_nothing(tmp_path):
    tree = _tree(tmp_path)
    before = {p: p.read_bytes() for p in (tree / "proc" / "irq").glob("*/smp_affinity")}
    out = _run("--oneshot", "--dry-run", "--format", "json", "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = [line for line in (tree / "proc" / "interrupts").read_text().splitlines()[1:]
            if line.split(":")[0].strip().isdigit()]
    assert [i["irq"] for i in report["irqs"]] == [int(line.split(":")[0]) for line in rows]
    nic = next(i for i in report["irqs"] if i["irq"] == 128)
    assert (nic["class"], nic["level"], nic["target_mask"]) == ("ethernet", "core", "00000008")
    assert nic["reason"] and nic["current_mask"] == "0000000f"
    assert report["cpus"]["online"] == "0-3"
    assert before == {p: p.read_bytes() for p in (tree / "proc" / "irq").glob("*/smp_affinity")}


def test_oneshot_places_by_class(tmp_path):
    """classify.c: network/storage/video IRQs end on one CPU each, class OTHER stays on
    the package (already its mask here, so not written). Exact masks depend on
    readdir order, which tests/golden pins down; this file system's order is arbitrary."""
    tree = _tree(tmp_path)
    out = _run("--oneshot", "--interval=1", "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    desc = json.loads(MACHINE.read_text())
    core = {q if isinstance(q, int) else q["irq"] for d in desc["pci_devices"]
            if int(str(d["class"]), 0) >> 16 in (1, 2, 3) for q in d["irqs"]}
    for irq in core:
        mask = int((tree / "proc" / "irq" / str(irq) / "smp_affinity").read_text(), 16)
        assert mask.bit_count() == 1, irq
    for q in desc["irqs"]:
        assert (tree / "proc" / "irq" / str(q["irq"]) / "smp_affinity").read_text() == "f\n"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--bogus"], 1, "unrecognized option"),
        (["--interval=0"], 1, "--interval"),
        (["--banirq=x"], 1, "--banirq"),
        (["--deepestcache=0"], 1, "--deepestcache"),
        (["--hintpolicy=bogus"], 1, "--hintpolicy"),
        (["--sysroot=/nonexistent", "--oneshot"], 1, "no proc/ and sys/"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(args, code, message):
    out = _run(*args)
    assert out.returncode == code
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def _try_ask(path: str, command: bytes) -> bytes | None:
    """The reply, or None while nobody listens on ``path`` yet."""
    try:
        return ask(path, command)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="the control socket answers uid 0 only")
def test_daemon_serves_the_control_socket_and_exits_0_on_sigterm(tmp_path):
    tree = _tree(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # The log goes to a file: a pipe nobody reads would block the daemon once it is full.
    with open(tmp_path / "daemon.log", "w") as log:
        proc = subprocess.Popen([*pyirqbalance_argv(), "--foreground", "--interval=1",
                                 "--banirq=9", "--sysroot", str(tree)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        sock = tree / "run" / "irqbalance" / f"irqbalance{proc.pid}.sock"
        # the file appears at bind(), connections are accepted from listen() on
        setup = wait_until(lambda: _try_ask(str(sock), b"setup"),
                           what=f"the daemon answers on {sock}")
        assert setup == b"SLEEP 1 IRQ 9 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"
        assert ask(str(sock), b"stats").startswith(b"TYPE 3 NUMBER -1 LOAD 0 SAVE_MODE 0 ")
        proc.send_signal(signal.SIGHUP)
        # still answering after a reload (the socket is not recreated by it)
        assert ask(str(sock), b"setup").startswith(b"SLEEP 1 IRQ 9 ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEFAULT_TIMEOUT_S) == 0, (tmp_path / "daemon.log").read_text()
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
