"""pyirqbalance.kernel.procirq: /proc/irq readers on real captures, and the smp_affinity write.

Read expectations are the captured file contents (tests/fixtures/proc). Write errors
are produced honestly in temporary trees (root ignores mode bits, so no chmod tricks):
a missing file (ENOENT), a directory in its place (EISDIR), a path through a regular
file (ENOTDIR), a symlink to /dev/full (ENOSPC); the errno policy table is checked
against irqbalance activate.c (spec sections 6.5 and 11.21).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyirqbalance.kernel.procirq import (
    Spurious,
    WriteResult,
    WriteStatus,
    list_irq_dirs,
    parse_spurious,
    read_default_smp_affinity,
    read_irq_affinity,
    read_irq_node,
    read_smp_affinity,
    write_smp_affinity,
)
from pyirqbalance.kernel.sysroot import SysRoot
from tests.conftest import Dir, Symlink

PROC = Path(__file__).parent.parent / "fixtures" / "proc"


def capture(name: str) -> SysRoot:
    return SysRoot(PROC / name)


def test_this_vm_irq_24():
    root = capture("this-vm")
    a = read_irq_affinity(root, 24)
    # smp_affinity "3", smp_affinity_list "0-1", effective "1" / "0", hint "0", node "-1"
    assert (a.smp_affinity, a.smp_affinity_list) == (0b11, 0b11)
    assert (a.effective_affinity, a.effective_affinity_list) == (0b01, 0b01)
    assert (a.affinity_hint, a.node) == (0, -1)
    assert a.spurious == Spurious(0, 0, 0)
    assert read_smp_affinity(root, 24) == 0b11
    assert read_irq_node(root, 24) == -1
    assert read_default_smp_affinity(root) == 0b11


def test_khandevops_effective_affinity():
    a = read_irq_affinity(capture("Khandevops1-linux"), 0)
    assert (a.smp_affinity, a.effective_affinity, a.node) == (1, 1, 0)


@pytest.mark.parametrize("irq, text, mask", [
    (0, "ff,ffffffff\n", (1 << 40) - 1),
    (113, "00,00000002\n", 1 << 1),
])
def test_forty_cpu_masks(irq, text, mask):
    root = capture("valmikroy-rubycli-linux_rx_tune/spec/fixtures")
    assert (PROC / "valmikroy-rubycli-linux_rx_tune/spec/fixtures/proc/irq" / str(irq)
            / "smp_affinity").read_text() == text
    assert read_smp_affinity(root, irq) == mask
    assert read_irq_affinity(root, irq).smp_affinity == mask


def test_valmikroy_masks_all_readable():
    root = capture("valmikroy-rubycli-linux_rx_tune/spec/fixtures")
    for irq in list_irq_dirs(root):
        text = (PROC / "valmikroy-rubycli-linux_rx_tune/spec/fixtures/proc/irq" / str(irq)
                / "smp_affinity").read_text()
        assert read_smp_affinity(root, irq) == int(text.replace(",", ""), 16)


def test_list_irq_dirs_keeps_readdir_order():
    root = capture("this-vm")
    names = os.listdir(PROC / "this-vm" / "proc" / "irq")
    assert list_irq_dirs(root) == [int(n) for n in names if n.isdigit()]
    assert "default_smp_affinity" in names


def test_missing_files(make_tree):
    root = make_tree({"proc/irq/7/smp_affinity": "f\n"})
    a = read_irq_affinity(root, 7)
    assert a.smp_affinity == 0xF
    assert (a.smp_affinity_list, a.effective_affinity, a.affinity_hint, a.node, a.spurious) == (
        None, None, None, None, None)
    assert read_irq_affinity(root, 8).smp_affinity is None
    assert read_smp_affinity(root, 8) is None
    assert read_irq_node(root, 8) is None
    assert read_default_smp_affinity(root) is None


def test_irqbalance_mask_quirks_on_read(make_tree):
    # irqbalance's partial parse: "1,,5" keeps CPU 0; strict readers say None
    root = make_tree({"proc/irq/3/smp_affinity": "1,,5\n", "proc/irq/3/node": "garbage\n"})
    assert read_smp_affinity(root, 3) == 1
    assert read_irq_affinity(root, 3).smp_affinity is None
    assert read_irq_affinity(root, 3).node is None


def test_parse_spurious():
    assert parse_spurious("count 5134\nunhandled 0\nlast_unhandled 0 ms\n") == Spurious(5134, 0, 0)
    assert parse_spurious("count 1\n") is None
    assert parse_spurious("") is None


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


def test_write_ok(make_tree, tmp_path):
    root = make_tree({"proc/irq/24/smp_affinity": "3\n"})
    result = write_smp_affinity(root, 24, 1 << 33 | 1)
    assert result == WriteResult(24, "00000002,00000001", 0, WriteStatus.OK)
    assert result.reason == "written"
    assert (tmp_path / "tree/proc/irq/24/smp_affinity").read_text() == "00000002,00000001"


def test_write_missing_irq(make_tree):
    root = make_tree({"proc/irq/24/smp_affinity": "3\n"})
    result = write_smp_affinity(root, 25, 1)
    assert (result.errno, result.status) == (errno.ENOENT, None)
    assert result.reason == "ENOENT: IRQ vanished"
    assert not (Path(root.proc("irq", "25", "smp_affinity"))).exists()  # never created


def test_write_directory_in_place_of_the_file(make_tree):
    root = make_tree({"proc/irq/24/smp_affinity": Dir()})
    result = write_smp_affinity(root, 24, 1)
    assert (result.errno, result.status) == (errno.EISDIR, None)


def test_write_through_a_file(make_tree):
    root = make_tree({"proc/irq/24": "not a directory"})
    assert write_smp_affinity(root, 24, 1).errno == errno.ENOTDIR


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_no_space(make_tree):
    root = make_tree({"proc/irq/24/smp_affinity": Symlink("/dev/full")})
    result = write_smp_affinity(root, 24, 1)
    assert (result.errno, result.status) == (errno.ENOSPC, None)
    assert result.reason == "ENOSPC: no free vector on target CPU"


@pytest.mark.parametrize("code", sorted(errno.errorcode))
def test_every_errno_comes_back_as_the_result(monkeypatch, make_tree, code):
    root = make_tree({"proc/irq/9/smp_affinity": "1\n"})
    monkeypatch.setattr(SysRoot, "write", staticmethod(lambda path, data: code))
    result = write_smp_affinity(root, 9, 2)
    assert (result.errno, result.status) == (code, None)  # the balancer sorts refusals
    assert result.reason.startswith(errno.errorcode[code] + ": ")


@pytest.mark.parametrize(
    "code, reason",
    [
        (errno.EIO, "EIO: kernel-managed IRQ, affinity cannot be changed"),
        (errno.EINVAL, "EINVAL: mask has no online CPU"),
        (errno.EACCES, "EACCES: smp_affinity is read-only"),
        (errno.EROFS, "EROFS: smp_affinity is read-only"),
        (errno.EPERM, "EPERM: kernel-managed or per-CPU IRQ, affinity cannot be changed"),
    ],
)
def test_reasons(code, reason):
    assert WriteResult(1, "00000001", code, None).reason == reason

