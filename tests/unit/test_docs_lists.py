"""Lists the code holds appear in the documents that list them.

* every option of the option table: in ``--help`` (generated from it) and in README.md's
  "Command line" table, and that table names no other option;
* every configuration key of the key table: in README.md's "Configuration file" table, row
  by section, and no other key;
* every metric the daemon exports (rendered from a live registry): in docs/api.md's or
  docs/monitoring.md's tables;
* every module of the package: in docs/architecture.md's tree, which names no other.

A new option, key, metric or module fails here until it is documented.
"""

from __future__ import annotations

import io
import logging
import re
from contextlib import redirect_stdout
from pathlib import Path

from prometheus_client import generate_latest

from pyirqbalance.api.health import StatusCollector
from pyirqbalance.api.metrics import PREFIX, Metrics
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.service import cli
from pyirqbalance.service.config import key_docs
from pyirqbalance.supervise import StatusBoard, ThreadHealth

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(text: str, heading: str) -> str:
    """The text under a Markdown heading, up to the next heading of any level."""
    start = text.index(heading + "\n") + len(heading) + 1
    nxt = re.search(r"^#{1,6} ", text[start:], re.M)
    return text[start:start + nxt.start()] if nxt else text[start:]


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``text`` (cells split on unescaped |)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _help_text() -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--help"], {}) == 0
    return " ".join(out.getvalue().split())


def test_help_describes_every_option_as_the_table_does():
    text = _help_text()
    for o in cli.option_table():
        assert f"--{o.long}" in text, o.long
        assert " ".join(o.help.removeprefix("legacy: ").split()) in text, o.long
        if o.short:
            assert f"-{o.short}, --{o.long}" in text, o.long


def test_readme_command_line_table_lists_every_option():
    rows = _table_rows(_section(README, "### Command line"))
    listed = {m for row in rows for m in re.findall(r"--([a-z][a-z-]*)", row[0])}
    assert listed == {o.long for o in cli.option_table()}


def test_readme_configuration_table_lists_every_key():
    rows = _table_rows(_section(README, "### Configuration file"))
    listed = {(row[0].strip("`"), key) for row in rows[1:]
              for key in re.findall(r"`([a-z_]+)`", row[1])}
    assert listed == {tuple(k.key.split(".", 1)) for k in key_docs()}


def _exported_metrics(fake_machine, counter_simulator) -> set[str]:
    """Every metric name a daemon with history, balanced placement and a thread exports."""
    root, machine = fake_machine("a_desktop4")
    sim = counter_simulator(root, machine)
    balancer = Balancer(root, BalancerSettings(placement="balanced"),
                        log=logging.getLogger("test"))
    balancer.keep_text = True
    balancer.start()
    board = StatusBoard()
    board.threads.append(ThreadHealth("api"))
    board.flags["cpu_mismatch"] = lambda: None
    board.interval = 10
    board.last_pass = 0.0
    metrics = Metrics(balancer)
    metrics.registry.register(StatusCollector(board, history_enabled=lambda: True))
    for _ in range(3):
        sim.advance(1)
        metrics.on_pass(balancer.run_pass())
    text = generate_latest(metrics.registry).decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if name.endswith("_created"):  # prometheus-client's creation time of a counter
            continue
        names.add(name + "_total" if kind == "counter" and not name.endswith("_total") else name)
    return names


def _named_metrics() -> set[str]:
    """Metric names written out in the metrics modules (also those a test machine does not
    produce: foreign writes, the placement floor): ``PREFIX + "x"`` and the
    ``("x", "Help text", value)`` figures."""
    names = set()
    for module in ("metrics.py", "health.py"):
        src = (ROOT / "pyirqbalance" / "api" / module).read_text()
        names |= set(re.findall(r'PREFIX \+ "([a-z_]+)"', src))
        names |= set(re.findall(r'\(\s*"([a-z_]+)",\s*"[A-Z]', src))
    return {PREFIX + n for n in names}


def _documented_metrics() -> set[str]:
    """Metric names in the docs' tables: `pyirqbalance_x`, or `_x` after one in the same cell."""
    text = "".join((ROOT / "docs" / f).read_text() for f in ("api.md", "monitoring.md")
                   if (ROOT / "docs" / f).exists())
    names = set()
    for row in _table_rows(text):
        for token in re.findall(r"`(_?[a-z_]+)`", row[0]):
            if token.startswith(PREFIX):
                names.add(token)
            elif token.startswith("_"):
                names.add(PREFIX + token[1:])
    return names


def test_every_exported_metric_is_documented(fake_machine, counter_simulator):
    exported = _exported_metrics(fake_machine, counter_simulator)
    assert len(exported) > 20
    documented = _documented_metrics()
    missing = sorted(exported - documented)
    missing += sorted(n for n in _named_metrics() - exported
                      if n not in documented and n + "_total" not in documented)
    assert missing == [], "metrics missing from docs/api.md or docs/monitoring.md"


def test_architecture_lists_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text[text.index("```") + 3:text.index("```", text.index("```") + 3)]
    modules = {p.name for p in (ROOT / "pyirqbalance").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", tree))
    assert modules - named == set(), "modules missing from docs/architecture.md"
    assert named - modules == set(), "docs/architecture.md names modules that do not exist"


def test_testing_md_counts_the_differential_machines():
    from tests.differential.cases import (
        CYCLES_MACHINES,
        CYCLES_PASSES,
        KNOWN_DIFFERENCES,
        ONESHOT_MACHINES,
    )

    text = " ".join((ROOT / "docs" / "testing.md").read_text().split())
    permuted = {k.machine for k in KNOWN_DIFFERENCES if k.mode == "oneshot"}
    assert f"on the same {len(ONESHOT_MACHINES)} fake machines" in text
    assert (f"identical masks on {len(ONESHOT_MACHINES) - len(permuted)} machines; "
            f"on {len(permuted)}, equal IRQs swap masks") in text
    assert f"Daemon, {CYCLES_PASSES} simulated passes on {len(CYCLES_MACHINES)} machines" in text


def test_relative_links_in_the_docs_resolve():
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []
