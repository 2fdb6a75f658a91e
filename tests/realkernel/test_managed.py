"""Kernel-managed NVMe queues: the kernel refuses their smp_affinity writes with EIO; the
daemon tries each once after its start and once after a rescan, logs each refusal once,
never retries on the passes between, and the kernel's masks stay what it chose.

The daemon ran under strace (every write(2) to /proc/irq/*/smp_affinity and its result);
which IRQs the kernel refuses was probed first by writing each IRQ's own mask back.
"""

from __future__ import annotations

import collections

import pytest

from tests.realkernel.records import irqs_named, parse_writes

pytestmark = pytest.mark.realkernel


@pytest.fixture(scope="module")
def obs(guests):
    return guests("4cpu-1node").step("managed")


def refused(obs) -> set[str]:
    return {irq for irq, err in obs["probe_errno"].items() if err == 5}  # EIO


def test_the_nvme_io_queues_are_managed_by_the_kernel(obs):
    queues = irqs_named(obs["interrupts"], r"\bnvme\d+q[1-9]\d*$")
    assert queues, "no NVMe I/O queue IRQs in the guest"
    assert queues <= refused(obs)


def test_each_refused_irq_is_tried_once_per_rescan_never_every_pass(obs):
    writes = parse_writes(obs["writes"])
    assert obs["passes"] >= 6 and obs["rc"] == 0, (obs["passes"], obs["rc"], obs["log"][-2000:])
    eio = [w for w in writes if w.errno == "EIO"]
    assert {w.irq for w in eio} <= refused(obs), "EIO from an IRQ the probe could write"
    for name, period in (("after start", [w for w in writes if w.time < obs["hup_at"]]),
                         ("after SIGHUP", [w for w in writes if w.time >= obs["hup_at"]])):
        tries = collections.Counter(w.irq for w in period if w.irq in refused(obs))
        assert tries, f"{name}: no write to a managed IRQ was tried (nothing tested)"
        assert max(tries.values()) == 1, f"{name}: retried within three passes: {tries}"


def test_each_refusal_is_logged_once(obs):
    eio = collections.Counter(w.irq for w in parse_writes(obs["writes"]) if w.errno == "EIO")
    logged = collections.Counter(
        line.split()[1].rstrip(":") for line in obs["log"].splitlines()
        if line.startswith("IRQ ") and "the kernel refused smp_affinity" in line)
    assert logged == eio


def test_the_managed_irqs_keep_the_kernels_masks(obs):
    for irq in refused(obs):
        assert obs["during"][irq] == obs["before"][irq], irq
