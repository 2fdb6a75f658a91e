"""The original affinities against a restore that races the daemon, files from another boot
or an older pyirqbalance, IRQs that changed identity, and state files that are not files."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from tests.hostile.conftest import affinities, run_cli, wait_for

BOOT_ID = str(uuid.UUID(int=0x5EED))


def _boot(tree: Path, boot_id: str) -> None:
    path = tree / "proc" / "sys" / "kernel" / "random" / "boot_id"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(boot_id + "\n")


def _state(d) -> Path:
    return d.state_dir / "original-affinity.json"


def _moved_then_stopped(d) -> dict[int, int]:
    """Start, wait until IRQs moved, stop; the affinities found before."""
    before = affinities(d.root)
    d.start(wait=False)
    assert wait_for(lambda: affinities(d.root) != before), d.log()
    assert d.stop() == 0, d.log()
    return before


def _recorded(d) -> dict[str, dict]:
    """The entries of the originals file (the daemon replaces it whole: rename)."""
    irqs: dict[str, dict] = json.loads(_state(d).read_bytes())["irqs"]
    return irqs


def _restore(d, *args: str):
    return run_cli("--restore", f"--sysroot={d.tree}", *args)


def _listed(text: str) -> set[int]:
    return {int(m[1]) for m in re.finditer(r"^IRQ (\d+): ", text, re.M)}


def test_restore_while_the_daemon_runs_is_refused_and_loses_nothing(live):
    d = live(api=False)
    before = affinities(d.root)
    d.start(wait=False)
    assert wait_for(lambda: affinities(d.root) != before and _state(d).exists())
    # The daemon goes on balancing meanwhile: a later pass that moves another IRQ adds its
    # entry to the file (an entry, once recorded, never changes).
    saved = _recorded(d)
    out = _restore(d)
    assert out.returncode == 3 and "stop it before --restore" in out.stderr, out
    assert str(d.proc.pid) in out.stderr
    kept = _recorded(d)
    assert {irq: kept.get(irq) for irq in saved} == saved  # every entry, as it was
    dry = _restore(d, "--dry-run")
    assert dry.returncode == 0 and "warning:" in dry.stderr and str(d.proc.pid) in dry.stderr
    assert set(saved) <= {str(irq) for irq in _listed(dry.stdout)} <= set(_recorded(d))
    assert d.stop() == 0
    out = _restore(d)
    assert out.returncode == 0, out
    assert affinities(d.root) == before
    d.assert_clean_log()


def test_each_original_carries_its_boot_actions_and_device(live):
    d = live(api=False)
    _boot(d.tree, BOOT_ID)
    before = _moved_then_stopped(d)
    saved = json.loads(_state(d).read_text())
    assert saved["format"] == 2 and saved["boot_id"] == BOOT_ID
    msi = {int(n): dev.name for dev in (d.tree / "sys" / "bus" / "pci" / "devices").iterdir()
           if (dev / "msi_irqs").is_dir() for n in os.listdir(dev / "msi_irqs")}
    assert saved["irqs"]
    for irq, entry in saved["irqs"].items():
        assert int(entry["mask"].replace(",", ""), 16) == before[int(irq)]
        # its handlers: the kernel's /proc/irq/N/<name>/ directories (register_handler_proc)
        handlers = sorted(p.name for p in (d.tree / "proc" / "irq" / irq).iterdir() if p.is_dir())
        assert entry["actions"] == ",".join(handlers)
        if int(irq) in msi:
            assert entry["device"] == msi[int(irq)]
    assert any(entry["device"] for entry in saved["irqs"].values())
    assert any(entry["actions"] for entry in saved["irqs"].values())


def test_a_file_from_another_boot_is_never_restored(live):
    d = live(api=False)
    _boot(d.tree, BOOT_ID)
    before = _moved_then_stopped(d)
    after = affinities(d.root)
    saved = _state(d).read_bytes()
    recorded = {int(irq) for irq in json.loads(saved)["irqs"]}
    _boot(d.tree, str(uuid.UUID(int=0xB007)))
    dry, out = _restore(d, "--dry-run"), _restore(d)
    for run in (dry, out):
        assert run.returncode == 0, run
        skipped = {int(m[1]) for m in re.finditer(r"IRQ (\d+): skipped: another boot",
                                                  run.stderr)}
        assert skipped == recorded, run.stderr
    assert "restored 0 of" in out.stdout and affinities(d.root) == after
    assert _state(d).read_bytes() == saved
    # Back in the boot it was recorded in: both list the same IRQs, the real run says
    # what it wrote and how many.
    _boot(d.tree, BOOT_ID)
    dry, out = _restore(d, "--dry-run"), _restore(d)
    assert dry.returncode == 0 and out.returncode == 0, (dry, out)
    assert _listed(dry.stdout) == _listed(out.stdout) == recorded
    for irq in recorded:
        assert re.search(rf"^IRQ {irq}: [0-9a-f,]+ -> [0-9a-f,]+$", out.stdout, re.M), out.stdout
    assert f"restored {len(recorded)} of {len(recorded)} IRQs (0 skipped)" in out.stdout
    assert affinities(d.root) == before and not _state(d).exists()


def test_an_irq_whose_handler_changed_is_skipped_with_the_reason(live):
    d = live(api=False)
    before = _moved_then_stopped(d)
    recorded = sorted(int(irq) for irq in json.loads(_state(d).read_text())["irqs"])
    other = recorded[0]
    # another driver's handler now (the kernel renames nothing: the old handler's
    # directory goes with free_irq, the new one's comes with request_irq)
    irqdir = d.tree / "proc" / "irq" / str(other)
    for handler in [p for p in irqdir.iterdir() if p.is_dir()]:
        handler.rmdir()
    (irqdir / "someone-else").mkdir()
    out = _restore(d)
    assert out.returncode == 0, out
    assert re.search(rf"IRQ {other}: skipped: actions changed", out.stderr), out.stderr
    now = affinities(d.root)
    assert all(now[irq] == before[irq] for irq in recorded if irq != other)
    assert now[other] != before[other]
    assert _state(d).exists()  # kept: its entry is still someone's original


def test_a_file_of_the_older_format_is_not_restored_blindly(live):
    d = live()
    d.state_dir.mkdir(parents=True)
    irq = next(iter(sorted(affinities(d.root))))
    _state(d).write_text(json.dumps({str(irq): "1"}))
    out = _restore(d)
    assert out.returncode == 3 and len(out.stderr.splitlines()) == 1, out
    assert "older pyirqbalance" in out.stderr and "Traceback" not in out.stderr
    assert _state(d).read_text() == json.dumps({str(irq): "1"})
    # The daemon keeps it aside and records afresh.
    d.start()
    assert wait_for(lambda: list(d.state_dir.glob("original-affinity.json.old-format-*")))
    assert d.log().count("older format") == 1
    d.assert_balancing()
    d.assert_clean_log()


# --------------------------------------------------------------------------
# state files that are not what they should be
# --------------------------------------------------------------------------


def test_a_deeply_nested_originals_file_is_set_aside_and_balancing_goes_on(live):
    d = live()
    d.state_dir.mkdir(parents=True)
    _state(d).write_text("[" * 200_000 + "]" * 200_000)
    d.start()
    assert wait_for(lambda: list(d.state_dir.glob("original-affinity.json.corrupt-*")))
    d.assert_balancing(3)
    assert d.log().count("is damaged") == 1
    assert "nested too deeply" in d.log()
    d.assert_clean_log()


def test_a_fifo_as_the_originals_file_blocks_neither_restore_nor_the_daemon(live):
    d = live()
    d.state_dir.mkdir(parents=True)
    os.mkfifo(_state(d))
    out = run_cli("--restore", f"--sysroot={d.tree}")
    assert out.returncode == 3 and "not a regular file" in out.stderr, out
    d.start()
    aside = wait_for(lambda: list(d.state_dir.glob("original-affinity.json.corrupt-*")))
    assert aside and aside[0].is_fifo()
    d.assert_balancing(2)
    assert d.stop() == 0  # SIGTERM is heard
    d.assert_clean_log()


def test_a_directory_in_place_of_the_originals_file_is_set_aside(live):
    d = live(api=False)
    _state(d).mkdir(parents=True)
    before = _moved_then_stopped(d)
    aside = list(d.state_dir.glob("original-affinity.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].is_dir()
    out = _restore(d)
    assert out.returncode == 0, out
    assert affinities(d.root) == before


def test_no_irq_is_moved_while_its_original_cannot_be_recorded(live, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    d = live(config=f"daemon:\n  state_dir: {blocker}/state\n")
    before = affinities(d.root)
    d.start()
    d.assert_balancing(3)
    assert affinities(d.root) == before
    health = d.health()
    problem = health["flags"]["originals_unrecorded"]
    assert problem and "cannot be recorded" in problem and health["status"] == "degraded"
    assert d.log().count("cannot be recorded") == 1
    d.assert_clean_log()


def test_an_override_row_with_a_mask_that_is_not_hex_does_not_stop_the_daemon(live):
    import sqlite3

    from pyirqbalance.history.store import HistoryStore

    d = live()
    HistoryStore(str(d.history)).close()
    db = sqlite3.connect(str(d.history), isolation_level=None)
    db.execute("INSERT INTO overrides (irq, mask, since) VALUES (122, 'zz', 0)")
    db.close()
    d.start()
    d.assert_balancing()
    assert "left out" in d.log() and "'zz'" in d.log()
    d.assert_clean_log()


def test_a_token_file_that_is_a_fifo_or_endless_is_refused_at_once(live, tmp_path):
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    for path, message in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file")):
        d = live()
        cfg = d.config.read_text().replace("api:\n", f"api:\n  token_file: {path}\n")
        d.config.write_text(cfg)
        out = run_cli("--foreground", "--interval=1", f"--config={d.config}",
                      f"--sysroot={d.tree}")
        assert out.returncode == 2 and message in out.stderr, out
        assert "Traceback" not in out.stderr


def test_a_pid_file_that_is_a_fifo_is_left_alone(live, tmp_path):
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    d = live(args=(f"--pid={fifo}",))
    d.start()
    d.assert_balancing()
    assert "not replaced" in d.log()
    assert d.stop() == 0
    assert fifo.is_fifo()
    d.assert_clean_log()
