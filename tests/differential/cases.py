"""Which machines the differential tests run, and the only differences they allow.

Machines are ``tests/machines/<name>.json`` (mkfake schema; a ``harness`` key
adds balancer arguments or environment). Recorded irqbalance 1.9.2 results
are ``tests/fixtures/expected/<name>/{oneshot,cycles}.json``
(``tools/record_expected.py``). Every allowed difference is documented in
docs/differences.md; anything not listed here fails the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
MACHINES_DIR = TESTS / "machines"
EXPECTED_DIR = TESTS / "fixtures" / "expected"

#: Oneshot: every machine of tests/machines (scale_256/1024 are benchmark-only
#: and not kept there).
ONESHOT_MACHINES = sorted(p.stem for p in MACHINES_DIR.glob("*.json"))

#: Cycles (daemon, simulated load): machines whose later passes move IRQs.
CYCLES_MACHINES = ["a_desktop4", "b_2s64", "g_nvme_managed", "l_hot_queues", "p_8node",
                   "p_managed_nvme", "p_shift"]
#: Balancing passes per cycles run.
CYCLES_PASSES = 6


@dataclass(frozen=True, slots=True)
class KnownDifference:
    """IRQs whose masks pyirqbalance may hand out in another order than irqbalance did.

    Only a permutation is allowed: the IRQs of the group, together, must get
    the same multiset of CPU sets on both sides.
    """

    machine: str
    mode: str
    #: Cycles: the pass it applies to (None: oneshot).
    pass_index: int | None
    irqs: frozenset[int]
    #: Section of docs/differences.md that explains it.
    doc: str


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    # NVMe #0 (node 0): admin + 64 kernel-managed io queues, all storage class,
    # all on node 0 with zero load: irqbalance orders them by heap address.
    KnownDifference(
        "c_256cpu_2000irq", "oneshot", None, frozenset(range(49, 114)),
        "#heap-address-order-of-equal-irqs",
    ),
    # NVMe #2 (node 2) of the AMD-like NPS4 placement machine: admin + 8 managed io queues,
    # all storage class with zero load in oneshot mode.
    KnownDifference(
        "p_amd_nps4", "oneshot", None, frozenset(range(120, 129)),
        "#heap-address-order-of-equal-irqs",
    ),
    # ixgbe on node 1 of a 96-CPU box with offline CPUs: 6 queues + link vector.
    KnownDifference(
        "d_96cpu_offline", "oneshot", None, frozenset(range(60, 67)),
        "#heap-address-order-of-equal-irqs",
    ),
    # Four LEGACY-class IRQs of four devices competing for four L2 domains.
    KnownDifference(
        "n_legacy_ties", "oneshot", None, frozenset({18, 120, 121, 127}),
        "#heap-address-order-of-equal-irqs",
    ),
)


def allowed(machine: str, mode: str, pass_index: int | None = None) -> tuple[KnownDifference, ...]:
    """The known differences that apply to one comparison."""
    return tuple(
        k for k in KNOWN_DIFFERENCES
        if k.machine == machine and k.mode == mode and k.pass_index == pass_index
    )
