#!/usr/bin/env python3
"""Record what the real irqbalance does on the differential test machines.

    tools/record_expected.py [--mode oneshot|cycles|both] [MACHINE ...]

For every machine (default: all of tests/differential/cases.py) runs
irqbalance through tests/oracle/harness.py and writes
``tests/fixtures/expected/<machine>/oneshot.json`` and/or ``cycles.json``:
the masks written (per pass for cycles), the command, the environment, the
irqbalance package version and the sha256 of the machine description; the
``--debug`` output goes next to it as ``oneshot.log`` / ``cycles.log`` when
it is small (< 256 KiB). Needs root, util-linux unshare and irqbalance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.differential.cases import (
    CYCLES_MACHINES,
    CYCLES_PASSES,
    EXPECTED_DIR,
    MACHINES_DIR,
    ONESHOT_MACHINES,
)
from tests.oracle import harness

LOG_LIMIT = 256 * 1024


def record(machine: str, mode: str, work: str) -> Path:
    """Run irqbalance on ``machine`` in ``mode`` and write the recording; returns its path."""
    path = MACHINES_DIR / f"{machine}.json"
    extra, env = harness.machine_options(path)
    if mode == "oneshot":
        res = harness.run_oneshot(harness.IRQBALANCE, path, work, extra, env)
    else:
        res = harness.run_cycles(harness.IRQBALANCE, path, work, CYCLES_PASSES, extra, env)
    if res.returncode != 0:
        raise SystemExit(f"{machine} {mode}: irqbalance exited {res.returncode}\n{res.log[-2000:]}")
    out = {
        "machine": machine,
        "machine_sha256": harness.machine_digest(path),
        "irqbalance_version": harness.irqbalance_version(),
        "command": list(res.argv),
        "env": env,
        "recorded_by": "tools/record_expected.py",
        **{k: v for k, v in res.to_json().items() if k not in ("argv", "wall_s", "balancer")},
    }
    if mode == "cycles":
        out["passes_requested"] = CYCLES_PASSES
    dest = EXPECTED_DIR / machine
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{mode}.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    log = dest / f"{mode}.log"
    if len(res.log) < LOG_LIMIT:
        log.write_text(res.log)
    elif log.exists():
        log.unlink()
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["oneshot", "cycles", "both"], default="both")
    ap.add_argument("machines", nargs="*", help="machine names (default: all the tests use)")
    a = ap.parse_args()
    ok, why = harness.have_oracle()
    if not ok:
        print(f"record_expected: {why}", file=sys.stderr)
        return 1
    modes = ["oneshot", "cycles"] if a.mode == "both" else [a.mode]
    with tempfile.TemporaryDirectory(prefix="record-expected-") as work:
        for mode in modes:
            names = a.machines or (ONESHOT_MACHINES if mode == "oneshot" else CYCLES_MACHINES)
            for name in names:
                print(record(name, mode, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
