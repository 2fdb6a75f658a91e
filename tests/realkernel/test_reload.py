"""A driver unloaded and loaded again under the daemon: ``modprobe -r e1000e`` takes its
IRQs away, ``modprobe e1000e`` (and the link up) brings them back, the daemon places them
again, runs on without a traceback, and its load report never lists IRQs the kernel no
longer has.
"""

from __future__ import annotations

import pytest

from tests.realkernel.records import bits, cpulist, mask

pytestmark = pytest.mark.realkernel


@pytest.fixture(scope="module")
def obs(guests):
    return guests("8cpu-2node").step("reload")


def report_irqs(report) -> set[str]:
    return {str(entry["irq"]) for entry in report["irqs"]}


def test_the_drivers_irqs_leave_and_come_back(obs):
    assert obs["irqs_loaded"], "e1000e had no IRQs: nothing tested"
    assert not set(obs["irqs_loaded"]) & set(obs["rows_unloaded"])
    assert obs["irqs_reloaded"]


def test_the_report_never_lists_irqs_the_kernel_no_longer_has(obs):
    assert report_irqs(obs["report_unloaded"]) <= set(obs["rows_unloaded"])
    assert not report_irqs(obs["report_unloaded"]) & set(obs["irqs_loaded"])
    assert report_irqs(obs["report_reloaded"]) <= set(obs["rows_reloaded"])


def test_the_returning_irqs_are_placed_again(obs):
    online = cpulist(obs["online"])
    assert len(cpulist_of_mask(obs["default_affinity"]) & online) > 1  # what a new IRQ gets
    for irq in obs["irqs_reloaded"]:
        # an ethernet IRQ: the daemon puts it on one CPU (core level)
        assert len(cpulist_of_mask(obs["masks_reloaded"][irq])) == 1, \
            (irq, obs["masks_reloaded"][irq])
        assert cpulist_of_mask(obs["masks_reloaded"][irq]) <= online


def test_the_daemon_runs_on_without_a_traceback(obs):
    assert obs["alive"] and obs["rc"] == 0, obs["log"][-3000:]
    assert "Traceback" not in obs["log"]


def cpulist_of_mask(text: str) -> set[int]:
    return bits(mask(text))
