"""Differential tests: pyirqbalance against the real irqbalance 1.9.2 on fake machines.

Gives the tests (marked ``differential``, registered in pyproject.toml) what they share:
machine paths and options, recorded irqbalance results, skips with a reason,
and :func:`assert_agrees` (identical masks, but for the known differences of
tests/differential/cases.py: permutations within a group).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.differential.cases import EXPECTED_DIR, MACHINES_DIR, KnownDifference
from tests.oracle import harness


def machine_path(name: str) -> Path:
    return MACHINES_DIR / f"{name}.json"


def expected(name: str, mode: str) -> dict:
    """The recorded irqbalance result of ``name`` (tools/record_expected.py)."""
    path = EXPECTED_DIR / name / f"{mode}.json"
    if not path.exists():
        pytest.fail(f"no recording {path}: run tools/record_expected.py --mode {mode} {name}")
    return json.loads(path.read_text())


def require_oracle() -> None:
    ok, why = harness.have_oracle()
    if not ok:
        pytest.skip(f"real irqbalance cannot run here: {why}")


def require_pyirqbalance() -> None:
    """Skip for the environment only; a pyirqbalance that cannot start fails the test."""
    ok, why = harness.have_pyirqbalance()
    if not ok:
        pytest.fail(why)
    ok, why = harness.can_unshare()
    if not ok and not Path("/dev/shm").is_dir():
        pytest.skip(f"no private namespace ({why}) and no /dev/shm tmpfs to stage the tree")


def _group_masks(written: Mapping[int, str], irqs: Iterable[int]) -> list[tuple[bool, int]]:
    masks = (harness.mask_cpus(written.get(i)) for i in irqs)
    return sorted((m is None, m or 0) for m in masks)


def assert_agrees(
    want: Mapping,
    got: Mapping[int, str],
    known: Iterable[KnownDifference],
    what: str,
) -> None:
    """``got`` (pyirqbalance's writes) against ``want`` (irqbalance's).

    Every difference must lie in a known group whose IRQs got a permutation of
    the same masks (heap-address tie order); anything else fails.
    """
    want = {int(k): v for k, v in want.items()}
    agreement = harness.compare(want, got)
    excused: set[int] = set()
    for k in known:
        hit = agreement.disagreeing & k.irqs
        if hit and _group_masks(want, k.irqs) == _group_masks(got, k.irqs):
            excused |= hit
    unexplained = agreement.disagreeing - excused
    assert not unexplained, (
        f"{what}: differences not in the known list (docs/differences.md):\n"
        + harness.compare(
            {i: want[i] for i in unexplained if i in want},
            {i: got[i] for i in unexplained if i in got},
        ).describe()
        + f"\nwhole run: {agreement.describe(limit=0)}"
    )


def assert_recording_is_of(machine: str, mode: str) -> dict:
    """The recorded irqbalance run was made on this very machine description; returns it."""
    rec = expected(machine, mode)
    assert rec["machine_sha256"] == harness.machine_digest(machine_path(machine)), (
        f"{machine}.json changed since the recording: "
        f"tools/record_expected.py --mode {mode} {machine}"
    )
    return rec
