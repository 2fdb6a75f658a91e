"""Oneshot: pyirqbalance writes the masks irqbalance 1.9.2 writes, machine by machine.

For every machine of tests/machines the recorded irqbalance result
(tests/fixtures/expected/<machine>/oneshot.json) is the reference:
``test_irqbalance_still_writes_the_recording`` re-runs the real irqbalance
(root, unshare, irqbalance installed) and requires the very same writes, and
``test_pyirqbalance_writes_what_irqbalance_wrote`` runs pyirqbalance on the
same staged tree and compares with the recording; together they are the live
differential comparison, and the second also runs where irqbalance cannot.
"""

from __future__ import annotations

import pytest

from tests.differential.cases import ONESHOT_MACHINES, allowed
from tests.differential.conftest import (
    assert_agrees,
    assert_recording_is_of,
    expected,
    machine_path,
    require_oracle,
    require_pyirqbalance,
)
from tests.oracle import harness

pytestmark = pytest.mark.differential


@pytest.mark.parametrize("machine", ONESHOT_MACHINES)
def test_recording_is_of_this_machine(machine):
    rec = assert_recording_is_of(machine, "oneshot")
    assert rec["irqbalance_version"].startswith("1.9.2")
    assert rec["returncode"] == 0
    assert rec["written"], "irqbalance wrote nothing: the machine tests nothing"


@pytest.mark.parametrize("machine", ONESHOT_MACHINES)
def test_irqbalance_still_writes_the_recording(machine, tmp_path):
    require_oracle()
    rec = expected(machine, "oneshot")
    extra, env = harness.machine_options(machine_path(machine))
    res = harness.run_oneshot(harness.IRQBALANCE, machine_path(machine), tmp_path, extra, env)
    assert res.returncode == 0, res.log[-3000:]
    agreement = harness.compare(rec["written"], res)
    assert agreement.ratio == 1.0, agreement.describe()
    assert list(res.kernel_would_reject) == rec["kernel_would_reject"]


@pytest.mark.parametrize("machine", ONESHOT_MACHINES)
def test_pyirqbalance_writes_what_irqbalance_wrote(machine, tmp_path):
    require_pyirqbalance()
    rec = expected(machine, "oneshot")
    extra, env = harness.machine_options(machine_path(machine))
    ours = harness.pyirqbalance_command("--oneshot", "--interval=1")
    res = harness.run_oneshot(ours, machine_path(machine), tmp_path, extra, env)
    assert res.returncode == 0, res.log[-3000:]
    assert_agrees(rec["written"], res.written, allowed(machine, "oneshot"), machine)
