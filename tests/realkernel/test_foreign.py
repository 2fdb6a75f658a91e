"""Foreign writes on a real kernel: the test writes another online CPU into the
smp_affinity of an IRQ the daemon balances, right after one of its passes (the daemon of
the driver-reload step, with the API and /metrics on, before it unloads the driver).

After the next passes the daemon counts exactly that one change: ``/metrics`` has
``pyirqbalance_irq_foreign_writes_total{irq="N",...} 1`` and a host total of 1,
``/api/v1/health``'s ``foreign_writes`` lists N alone with the masks the kernel showed
before and after the test's write, and the log warns once. The kernel-managed NVMe queues,
whose writes the kernel refuses with EIO (probed by writing each IRQ's own mask back) and
which the daemon tried to write, are never counted.
"""

from __future__ import annotations

import re

import pytest

from tests.realkernel.records import irqs_named, mask

pytestmark = pytest.mark.realkernel

_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$", re.M)


@pytest.fixture(scope="module")
def obs(guests):
    return guests("8cpu-2node").step("reload")


@pytest.fixture(scope="module")
def foreign(obs):
    return obs["foreign"]


def samples(text: str, name: str) -> dict[str, float]:
    """The samples of metric ``name`` in a Prometheus text exposition: labels -> value."""
    return {labels or "": float(value) for metric, labels, value in _SAMPLE.findall(text)
            if metric == name}


def refused(obs) -> set[str]:
    return {irq for irq, err in obs["probe_errno"].items() if err == 5}  # EIO


def test_the_kernel_kept_the_foreign_mask(foreign):
    assert foreign["errno"] == 0
    assert mask(foreign["found"]) == 1 << foreign["cpu"]
    assert mask(foreign["found"]) != mask(foreign["expected"])


def test_metrics_count_the_one_foreign_write(foreign):
    irq = foreign["irq"]
    per_irq = samples(foreign["metrics"], "pyirqbalance_irq_foreign_writes_total")
    assert {re.search(r'irq="(\d+)"', k).group(1): v for k, v in per_irq.items()} == {irq: 1.0}, \
        (per_irq, foreign["passes_at_write"], foreign["log"][-3000:])
    assert samples(foreign["metrics"], "pyirqbalance_foreign_writes_total") == {"": 1.0}


def test_health_lists_it_with_the_masks_the_kernel_showed(foreign):
    fw = foreign["health"]["foreign_writes"]
    assert fw["enabled"] is True and fw["total"] == 1, fw
    assert list(fw["irqs"]) == [foreign["irq"]], fw
    entry = fw["irqs"][foreign["irq"]]
    assert entry["changes"] == 1 and entry["left_alone"] is False, entry
    assert mask(entry["expected"]) == mask(foreign["expected"]), (entry, foreign["expected"])
    assert mask(entry["found"]) == mask(foreign["found"]), (entry, foreign["found"])
    assert fw["left_alone"] == []


def test_the_log_warns_once_naming_the_masks(foreign):
    lines = [line for line in foreign["log"].splitlines()
             if "changed by something else" in line]
    assert len(lines) == 1, lines
    m = re.search(r"IRQ (\d+) .*expected ([0-9a-f,]+), found ([0-9a-f,]+)", lines[0])
    assert m, lines[0]
    assert m.group(1) == foreign["irq"]
    assert (mask(m.group(2)), mask(m.group(3))) == (mask(foreign["expected"]),
                                                    mask(foreign["found"]))


def test_kernel_managed_irqs_are_never_counted(obs, foreign):
    queues = irqs_named(obs["rows_loaded"], r"\bnvme\d+q[1-9]\d*$")
    assert queues and queues <= refused(obs), (queues, obs["probe_errno"])
    tried = {line.split()[1].rstrip(":") for line in foreign["log"].splitlines()
             if line.startswith("IRQ ") and "the kernel refused smp_affinity" in line}
    assert tried & queues, "the daemon tried no managed IRQ: nothing tested"
    per_irq = samples(foreign["metrics"], "pyirqbalance_irq_foreign_writes_total")
    counted = {re.search(r'irq="(\d+)"', k).group(1) for k in per_irq}
    assert not counted & refused(obs), counted
    assert not set(foreign["health"]["foreign_writes"]["irqs"]) & refused(obs)
