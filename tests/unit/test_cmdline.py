"""pyirqbalance.kernel.cmdline: isolcpus / nohz_full in every kernel form.

Rules from the kernel: lib/cmdline.c ``next_arg`` (quotes, ``--``) and
kernel/sched/isolation.c (isolcpus flags; an unknown flag or a bad list voids the
parameter). The real command line is this VM's capture (tests/fixtures/proc/this-vm).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyirqbalance.kernel.cmdline import parse_cmdline, read_cmdline, split_params
from pyirqbalance.kernel.cpumask import mask_of
from pyirqbalance.kernel.sysroot import SysRoot

PROC = Path(__file__).parent.parent / "fixtures" / "proc"


@pytest.mark.parametrize(
    "text, isolcpus, flags, nohz_full",
    [
        ("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet isolcpus=2-5\n", [2, 3, 4, 5], ("domain",),
         []),
        ("isolcpus=domain,managed_irq,2-5", [2, 3, 4, 5], ("domain", "managed_irq"), []),
        ("isolcpus=nohz,domain,1,3", [1, 3], ("nohz", "domain"), []),
        ("isolcpus=managed_irq,7", [7], ("managed_irq",), []),
        ("nohz_full=1-3", [], (), [1, 2, 3]),
        ('isolcpus="1,3" nohz_full="4"', [1, 3], ("domain",), [4]),
        ('"isolcpus=6-7"', [6, 7], ("domain",), []),
        ("isolcpus=1 isolcpus=9", [9], ("domain",), []),  # last wins
        ("isolcpus=0-15:2/4", [0, 1, 4, 5, 8, 9, 12, 13], ("domain",), []),
        ("isolcpus=foo,1", [], (), []),  # unknown flag: ignored by the kernel
        ("isolcpus=nohz", [], (), []),  # a flag without CPU list: unknown sub-parameter
        ("isolcpus=3-1 nohz_full=x", [], (), []),  # bad lists
        ("isolcpus=1 -- isolcpus=5 nohz_full=2", [1], ("domain",), []),  # after -- : init's
        ("nohz-full=2", [], (), [2]),  # - and _ are the same in parameter names
        ("", [], (), []),
    ],
)
def test_forms(text, isolcpus, flags, nohz_full):
    k = parse_cmdline(text)
    assert (k.isolcpus, k.isolcpus_flags, k.nohz_full) == (
        mask_of(isolcpus), flags, mask_of(nohz_full))


def test_split_params_quotes():
    assert split_params('a="b c" "d=e f" g h= "i" =j') == [
        ("a", "b c"), ("d", "e f"), ("g", None), ("h", ""), ("i", None), ("=j", None)]


def test_this_vm(tmp_path):
    k = read_cmdline(SysRoot(PROC / "this-vm"))
    assert (k.isolcpus, k.nohz_full) == (0, 0)
    assert k.params[0] == ("mitigations", "auto,no_guest_host,no_guest_guest")
    assert k.get("console") == "ttyS0"
    assert k.params[-1] == ("rdinit", "/process_api")  # the rest, after --, is init's
    assert read_cmdline(SysRoot(tmp_path)) is None
