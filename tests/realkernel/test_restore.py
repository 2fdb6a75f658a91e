"""``--restore`` on a real kernel: after a daemon ran, every /proc/irq/*/smp_affinity is
what the dump taken at boot (before anything wrote one) says, and the state file is gone;
entries recorded in another boot are refused and nothing is written.

"Another boot" is made inside the same guest boot: the state file's boot id is changed
before a first ``--restore``; the file as the daemon wrote it is then put back for the
second.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.realkernel


@pytest.fixture(scope="module")
def guest(guests):
    return guests("16cpu-4node")


@pytest.fixture(scope="module")
def obs(guest):
    return guest.step("restore")


def test_the_daemon_changed_affinities_and_recorded_where_they_were(obs):
    assert obs["rc_daemon"] == 0
    assert any(obs["changed"][irq] != obs["before"][irq] for irq in obs["before"])
    state = json.loads(obs["state"])
    assert state.get("format") == 2 and state.get("boot_id") == obs["boot_id"], state
    for irq, entry in state["irqs"].items():
        assert set(entry) >= {"mask", "actions", "device"}, (irq, entry)


def test_restore_puts_back_exactly_what_the_kernel_had_at_boot(guest, obs):
    boot = guest.boot()["masks"]
    assert obs["restore"]["rc"] == 0, obs["restore"]["stderr"]
    differ = {irq: (boot.get(irq), m) for irq, m in obs["restored"].items() if boot.get(irq) != m}
    assert not differ, f"(at boot, after --restore): {differ}"
    assert set(obs["restored"]) == set(boot)
    assert not obs["state_kept"]


def test_restore_refuses_entries_from_another_boot(obs):
    state = json.loads(obs["state"])
    assert obs["other_boot"]["rc"] == 0, obs["other_boot"]["stderr"]
    assert obs["after_other_boot"] == obs["changed"], "--restore wrote entries of another boot"
    skipped = {line.split()[2].rstrip(":") for line in obs["other_boot"]["stderr"].splitlines()
               if line.startswith("pyirqbalance: IRQ ") and ": skipped: another boot" in line}
    assert skipped == set(state["irqs"])
    assert obs["other_boot_kept"]
