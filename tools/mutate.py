#!/usr/bin/env python3
"""Plant known bugs in a copy of the tree and check that the named tests catch each one.

    tools/mutate.py [--list] [--keep] [NAME ...]

Each mutation below replaces one exact piece of a source file (a bug that was once
possible, or that a test is there to prevent) in a temporary copy of the checkout, then
runs the tests named for it there with this interpreter (the checkout's venv). A mutation
is

* ``caught``  -- the tests failed, as they must;
* ``MISSED``  -- they passed;
* ``SKIPPED`` -- no test ran (all skipped or deselected): as bad as missed, the run did
  not look (the differential tests need root, unshare and irqbalance);
* ``STALE``   -- the code to replace is no longer there: update the mutation.

The exit status is 0 only when every mutation asked for was caught. Nothing is written
outside the temporary copy (``--keep`` leaves it for inspection).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutation(NamedTuple):
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "migration-boundary", "migration taken when it only swaps the loads (>= -> >)",
        "pyirqbalance/engine/irqlist.py", "    if lhs >= rhs:\n", "    if lhs > rhs:\n",
        ("tests/unit/test_engine.py::test_a_move_that_only_swaps_the_two_loads_is_not_made",),
    ),
    Mutation(
        "exact-hint-migrated", "--hintpolicy=exact IRQs selected for migration",
        "pyirqbalance/engine/irqlist.py",
        "        return False  # --hintpolicy=exact", "        pass  # --hintpolicy=exact",
        ("tests/unit/test_engine.py::test_an_irq_with_an_exact_hint_is_never_migrated",),
    ),
    Mutation(
        "balanced-ignores-subset", "--placement=balanced ignores --hintpolicy=subset",
        "pyirqbalance/engine/balanced.py",
        "        allowed &= info.hint\n", "        allowed &= allowed\n",
        ("tests/integration/test_balanced_behaviour.py::"
         "test_subset_hint_keeps_the_irq_on_its_hint",
         "tests/integration/test_balanced_behaviour.py::"
         "test_subset_hint_moves_an_irq_onto_its_hint"),
    ),
    Mutation(
        "balanced-uses-banned-cpus", "--placement=balanced places IRQs on banned CPUs",
        "pyirqbalance/engine/balanced.py",
        "    usable = topo.online & topo.unbanned\n", "    usable = topo.online\n",
        ("tests/integration/test_balanced_behaviour.py::"
         "test_a_banned_cpu_is_emptied_and_never_used",),
    ),
    Mutation(
        "activation-ignores-hint", "activation writes the object's CPUs whatever the hint policy",
        "pyirqbalance/engine/activate.py",
        "        target, problem = hinted_target(info, target, banned)\n",
        "        problem = None\n",
        ("tests/integration/test_hint_policies.py::"
         "test_the_dry_run_shows_what_the_run_writes[subset-irqbalance]",),
    ),
    Mutation(
        "subset-is-the-object", "--hintpolicy=subset writes the object, not its CPUs in the hint",
        "pyirqbalance/engine/activate.py",
        "    subset = target & info.hint\n", "    subset = target\n",
        ("tests/integration/test_hint_policies.py::"
         "test_the_dry_run_shows_what_the_run_writes[subset-irqbalance]",),
    ),
    Mutation(
        "dry-run-ignores-hint", "--dry-run shows the object's CPUs, not the hinted mask",
        "pyirqbalance/engine/reasons.py",
        "        target = hinted if problem is None else None\n",
        "        target = info.assigned.mask & online\n",
        ("tests/integration/test_hint_policies.py::"
         "test_the_dry_run_shows_what_the_run_writes[exact-irqbalance]",),
    ),
    Mutation(
        "default-placement-is-balanced", "the default placement runs the balanced planner",
        "pyirqbalance/engine/balancer.py",
        '        if self.settings.placement == "balanced":\n            self._plan_balanced(stat)',
        '        if self.settings.placement != "none":\n            self._plan_balanced(stat)',
        ("tests/unit/test_balanced.py::test_default_placement_is_untouched",),
    ),
    Mutation(
        "rival-is-self", "the running-irqbalance check counts the process asking",
        "pyirqbalance/service/rivals.py",
        "        if pid != self_pid and is_irqbalance(", "        if is_irqbalance(",
        ("tests/integration/test_daemon.py::test_a_process_named_irqbalance_on_this_host_is_seen",),
    ),
    Mutation(
        "help-fails", "python -m pyirqbalance --help exits 1 (the differential tests must fail, "
                      "not skip)",
        "pyirqbalance/service/cli.py",
        "        sys.stdout.write(HELP)\n        return EXIT_OK",
        "        sys.stdout.write(HELP)\n        return EXIT_USAGE",
        ("tests/differential/test_oneshot.py::"
         "test_pyirqbalance_writes_what_irqbalance_wrote[a_desktop4]",),
    ),
)


def copy_tree(dst: Path) -> None:
    """The checkout's files as git sees them (tracked and new, not ignored) into ``dst``."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True)
    for rel in out.stdout.decode().split("\0"):
        if not rel or not (ROOT / rel).exists():
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target, follow_symlinks=False)


def outcome(proc: subprocess.CompletedProcess) -> str:
    text = proc.stdout + proc.stderr
    if proc.returncode == 0:
        ran = re.search(r"\b(\d+) passed", text)
        return "MISSED" if ran else "SKIPPED"
    if proc.returncode == 1 and re.search(r"\b\d+ failed", text):
        return "caught"
    if proc.returncode == 5:
        return "SKIPPED"
    return f"ERROR (pytest exit {proc.returncode})"


def run(m: Mutation, keep: bool) -> tuple[str, str]:
    work = Path(tempfile.mkdtemp(prefix=f"mutate-{m.name}-"))
    try:
        copy_tree(work)
        path = work / m.path
        text = path.read_text()
        if text.count(m.old) != 1:
            return "STALE", f"{m.path}: the code to replace occurs {text.count(m.old)} times"
        path.write_text(text.replace(m.old, m.new))
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONPATH")}
        env["PYTHONPATH"] = str(work)  # the copy's package, not the editable install's
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *m.tests],
            cwd=work, env=env, capture_output=True, text=True, timeout=1800)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        return outcome(proc), lines[-1] if lines else ""
    finally:
        if keep:
            print(f"  kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests")
    ap.add_argument("--keep", action="store_true", help="keep each mutated copy")
    args = ap.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        ap.error(f"unknown mutation(s): {', '.join(unknown)}; see --list")
    chosen = [known[n] for n in args.names] or list(MUTATIONS)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.what}\n  {m.path}\n  " + "\n  ".join(m.tests))
        return 0
    bad = 0
    for m in chosen:
        verdict, detail = run(m, args.keep)
        bad += verdict != "caught"
        print(f"{verdict:8} {m.name}: {m.what} [{detail}]", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} planted bugs caught")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
