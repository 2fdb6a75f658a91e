"""pyirqbalancectl: views and changes through a live API, exit codes, local mode, report vs
--dry-run."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from pyirqbalance.api import ctl
from pyirqbalance.api.report import NO_TOPOLOGY_NOTE
from pyirqbalance.history import HistoryStore
from tests.hermetic import pyirqbalance_argv
from tests.integration.test_api import TOKEN, WRAP_IRQ, WRAP_RATE, Rig

ROOT = Path(__file__).resolve().parents[2]
EMPTY_CONFIG = ""


@pytest.fixture(autouse=True)
def empty_config(tmp_path: Path):
    """Tests never read the host's /etc/pyirqbalance/pyirqbalance.yaml."""
    global EMPTY_CONFIG
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    EMPTY_CONFIG = str(path)


@pytest.fixture
def rig(tmp_path, fake_machine, counter_simulator, monkeypatch):
    monkeypatch.delenv("PYIRQBALANCE_URL", raising=False)
    monkeypatch.delenv("PYIRQBALANCE_TOKEN", raising=False)
    r = Rig(tmp_path, fake_machine, counter_simulator)
    r.run_pass()
    try:
        yield r
    finally:
        r.close()


def run(*argv: str, config: Path | None = None) -> tuple[int, str]:
    """ctl.main with an empty configuration file unless ``config`` is given."""
    out = io.StringIO()
    if config is None:
        config = Path(EMPTY_CONFIG)
    args = ["--config", str(config), *argv]
    return ctl.main(args, out=out), out.getvalue()


def run_url(rig: Rig, *argv: str, token: bool = True) -> tuple[int, str]:
    opts = ["--url", rig.url]
    if token:
        opts += ["--token-file", str(Path(rig.history.path).parent / "token")]
    return run(*opts, *argv)


def test_status(rig: Rig):
    code, text = run_url(rig, "status")
    assert code == ctl.EXIT_OK
    assert "writes:     enabled (token)" in text and f"history:    on, {rig.history.path}" in text
    code, text = run_url(rig, "--json", "status")
    assert json.loads(text)["cycle"] == 1


def test_distribution_filters(rig: Rig):
    code, text = run_url(rig, "distribution", "--irq", "128", "--cpus", "0-1")
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["IRQ", "CPU0", "CPU1", "TOTAL", "NAME"]
    row = next(line for line in Path(rig.root.proc("interrupts")).read_text().splitlines()
               if line.strip().startswith("128:")).split()
    total = str(sum(map(int, row[1:5])))
    assert lines[1].split() == ["128", row[1], row[2], total, "enp3s0-TxRx-0"]
    code, text = run_url(rig, "--json", "distribution", "--name", "enp3s0-txrx")
    assert sorted(r["irq"] for r in json.loads(text)["rows"]) == [128, 129, 130, 131]
    code, _ = run_url(rig, "distribution", "--cpus", "x-")
    assert code == ctl.EXIT_USAGE


def test_cpu_summary(rig: Rig):
    rig.run_pass()
    eff = rig.sim.state.eff[WRAP_IRQ]
    code, text = run_url(rig, "--json", "cpu-summary", "--seconds", "0.001", "--cpus", str(eff))
    assert code == 0
    (result,) = json.loads(text)
    assert {i["irq"]: i["count"] for i in result["irqs"]}[WRAP_IRQ] == WRAP_RATE


def test_summary_window(rig: Rig):
    rig.run_pass()
    code, text = run_url(rig, "--json", "summary", "--start=-1h")
    assert code == 0
    data = json.loads(text)
    assert data["source"] == "history"
    assert {i["irq"]: i["total"] for i in data["irqs"]}[WRAP_IRQ] == WRAP_RATE
    code, text = run_url(rig, "summary", "--start=-1h", "--top", "2")
    assert "CPU  INTERRUPTS" in text
    assert code == 0
    code, _ = run_url(rig, "summary", "--start", "soon")
    assert code == ctl.EXIT_USAGE


def test_irq_show(rig: Rig):
    code, text = run_url(rig, "irq", "128")
    assert code == 0
    assert text.startswith("IRQ 128: enp3s0-TxRx-0")
    assert "class / level:       ethernet" in text
    code, _ = run_url(rig, "irq", "4000")
    assert code == ctl.EXIT_NOT_FOUND


def test_set_release_release_all(rig: Rig):
    code, text = run_url(rig, "set", "128", "--cpus", "2")
    assert code == 0 and "pinned to CPUs 2" in text
    assert Path(rig.root.proc("irq", "128", "smp_affinity")).read_text() == "00000004"
    assert run_url(rig, "set", "129", "--mask", "8")[0] == 0
    code, text = run_url(rig, "release", "128")
    assert code == 0 and rig.overrides.items() == {129: 0x8}
    code, text = run_url(rig, "release", "--all")
    assert code == 0 and "released 1 override(s): 129" in text
    assert rig.overrides.items() == {}
    assert run_url(rig, "release", "128")[0] == ctl.EXIT_NOT_FOUND
    assert run_url(rig, "release")[0] == ctl.EXIT_USAGE                 # neither N nor --all
    assert run_url(rig, "release", "128", "--all")[0] == ctl.EXIT_USAGE
    with pytest.raises(SystemExit) as err:                                # no 'restore' alias
        run_url(rig, "restore")
    assert err.value.code == 2


def test_exit_codes(rig: Rig, tmp_path: Path):
    assert run_url(rig, "set", "128", "--cpus", "1", token=False)[0] == ctl.EXIT_DENIED
    assert run_url(rig, "set", "127", "--cpus", "1")[0] == ctl.EXIT_REFUSED     # EIO: managed
    assert run_url(rig, "set", "128", "--cpus", "0-63")[0] == ctl.EXIT_USAGE    # not online
    assert run("--url", "http://127.0.0.1:1", "status")[0] == ctl.EXIT_UNREACHABLE
    assert run("--url", f"unix:{tmp_path}/none.sock", "status")[0] == ctl.EXIT_UNREACHABLE
    assert run("--url", "ftp://x", "status")[0] == ctl.EXIT_USAGE
    with pytest.raises(SystemExit) as err:
        run("set", "128")                       # --cpus or --mask is required
    assert err.value.code == 2


def test_url_from_environment_and_yaml(rig: Rig, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYIRQBALANCE_URL", rig.url)
    assert run("status")[0] == 0
    monkeypatch.delenv("PYIRQBALANCE_URL")
    config = tmp_path / "pyirqbalance.yaml"
    config.write_text(f"api:\n  enabled: true\n  unix_socket: {rig.sock}\n"
                      f"  token_file: {Path(rig.history.path).parent / 'token'}\n")
    code, _ = run("set", "131", "--cpus", "3", config=config)
    assert code == 0 and rig.overrides.items() == {131: 0x8}


def test_top_once(rig: Rig):
    code, text = run_url(rig, "--json", "top", "--iterations", "2", "--interval", "0.01")
    frames = [json.loads(line) for line in text.splitlines()]
    assert code == 0 and len(frames) == 2
    assert set(frames[0]["cpus"]) == {"0", "1", "2", "3"}
    code, text = run_url(rig, "top", "--iterations", "1", "--interval", "0.01", "--limit", "3")
    assert text.startswith("pyirqbalancectl top") and "IRQ/s" in text
    assert "\x1b[" not in text        # no screen control when not on a terminal


def test_report_through_api(rig: Rig):
    code, text = run_url(rig, "--json", "report", "--threshold", "90")
    data = json.loads(text)
    assert code == 0 and data["threshold_pts"] == 90 and data["group"] == "cpu"
    by_irq = {i["irq"]: i for i in data["irqs"]}
    assert by_irq[WRAP_IRQ]["action"] == "leave"      # banned: the balancer leaves it
    code, text = run_url(rig, "report", "--flagged")
    assert code == 0 and "IRQs have cpu shares more than 5 points apart" in text
    assert "interrupt load " in text


def _dry_run(tree: str) -> dict:
    proc = subprocess.run(
        [*pyirqbalance_argv(), "--dry-run", "--format=json", f"--sysroot={tree}"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("machine", ["a_desktop4", "b_2s64"])
def test_local_report_agrees_with_dry_run(fake_machine, machine, monkeypatch):
    monkeypatch.delenv("PYIRQBALANCE_URL", raising=False)
    for var in ("IRQBALANCE_BANNED_CPULIST", "IRQBALANCE_BANNED_CPUS", "IRQBALANCE_ARGS"):
        monkeypatch.delenv(var, raising=False)
    root, _ = fake_machine(machine)
    dry = {i["irq"]: i for i in _dry_run(root.base)["irqs"]}
    code, text = run("--local", "--sysroot", root.base, "--json", "report", "--group", "cpu")
    assert code == 0
    report = json.loads(text)
    assert report["irqs"], "the fake machine's IRQs have counts"
    for item in report["irqs"]:
        d = dry[item["irq"]]
        assert item["recommended"] == d["target_cpus"], item["irq"]
        assert item["reason"] == d["reason"], item["irq"]
    assert NO_TOPOLOGY_NOTE not in report["notes"]


def test_report_on_a_saved_file(tmp_path: Path):
    saved = tmp_path / "interrupts"
    saved.write_text(
        "           CPU0       CPU1       CPU2       CPU3\n"
        " 24:         90         10          0          0   PCI-MSI 1-edge      eth0\n"
        " 25:         25         25         25         25   PCI-MSI 2-edge      nvme0q1\n"
        " 26:          0          0          0          0   PCI-MSI 3-edge      idle\n"
        "LOC:          5          5          5          5   Local timer interrupts\n"
    )
    code, text = run("--json", "report", "--file", str(saved), "--threshold", "80")
    data = json.loads(text)
    assert code == 0
    # 24: shares 90/10/0/0 differ by 90 > 80 points: the verdict names the least busy CPU
    # (CPU2 and CPU3 tie at 0 %: the lower number).
    assert [(i["irq"], i["verdict"], i["shares"]) for i in data["irqs"]] == [
        (24, "CPU2", [90.0, 10.0, 0.0, 0.0]),
        (25, "Balanced", [25.0, 25.0, 25.0, 25.0]),
    ]
    assert data["notes"] == [NO_TOPOLOGY_NOTE]
    assert run("report", "--file", str(tmp_path / "missing"))[0] == ctl.EXIT_USAGE


def test_local_mode_reads_the_store_and_writes_the_tree(fake_machine, monkeypatch):
    monkeypatch.delenv("PYIRQBALANCE_URL", raising=False)
    root, _ = fake_machine("a_desktop4")
    store_path = Path(root.base) / "var/lib/pyirqbalance/history.sqlite"
    HistoryStore(str(store_path)).close()
    code, text = run("--local", "--sysroot", root.base, "set", "128", "--cpus", "1")
    assert code == 0
    assert Path(root.proc("irq", "128", "smp_affinity")).read_text() == "00000002"
    with HistoryStore(str(store_path)) as store:
        assert store.overrides() == {128: 0x2}
    code, text = run("--local", "--sysroot", root.base, "--json", "status")
    assert json.loads(text)["overrides"] == {"128": "1"}
    code, text = run("--local", "--sysroot", root.base, "--json", "cpu-summary",
                     "--seconds", "0.01")
    assert code == 0 and len(json.loads(text)) == 4
    code, _ = run("--local", "--sysroot", root.base, "summary", "--start=-1h")
    assert code == 0            # an empty store: an empty window, not an error
    assert run("--local", "--sysroot", root.base, "--token-file", "/x", "status")[0] == 0
    assert TOKEN  # the API rig's token is not involved in local mode


# --------------------------------------------------------------------------
# the client's own fixes: --version, pins shown, set --force, local status, short history
# --------------------------------------------------------------------------


def test_version(capsys):
    from pyirqbalance import __version__

    with pytest.raises(SystemExit) as err:
        run("--version")
    assert err.value.code == 0
    assert capsys.readouterr().out == f"pyirqbalancectl {__version__}\n"


def test_irq_on_a_pinned_irq_says_so(rig: Rig):
    assert run_url(rig, "set", "128", "--cpus", "2")[0] == 0
    code, text = run_url(rig, "irq", "128")
    assert code == 0
    assert "override:            2 (set through the API)" in text
    assert ("balancer target:     - (pinned to 2 through the API: the balancer leaves it "
            "alone until 'pyirqbalancectl release 128')") in text


def _isolated_machine(fake_machine, monkeypatch) -> Path:
    """e_isolated_nohz: isolcpus=2-3, nohz_full=12-15, all banned by the balancer."""
    monkeypatch.delenv("PYIRQBALANCE_URL", raising=False)
    for name in ("IRQBALANCE_BANNED_CPUS", "IRQBALANCE_BANNED_CPULIST"):
        monkeypatch.delenv(name, raising=False)
    root, _ = fake_machine(ROOT / "tests" / "machines" / "e_isolated_nohz.json")
    return Path(root.base)


def test_set_onto_an_isolated_cpu_needs_force(fake_machine, monkeypatch, capsys):
    tree = _isolated_machine(fake_machine, monkeypatch)
    affinity = tree / "proc" / "irq" / "131" / "smp_affinity"
    before = affinity.read_text()
    code, _ = run("--local", "--sysroot", str(tree), "set", "131", "--cpus", "3")
    assert code == ctl.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("pyirqbalancectl: CPU 3 is banned for interrupts (")
    assert "add --force to pin IRQ 131 there anyway" in err and err[-1] == "\n"
    assert affinity.read_text() == before
    code, text = run("--local", "--sysroot", str(tree), "set", "131", "--mask", "c", "--force")
    assert code == 0 and "pinned to CPUs 2-3" in text
    assert int(affinity.read_text().replace(",", ""), 16) == 0xC
    # A usable CPU needs no --force.
    assert run("--local", "--sysroot", str(tree), "set", "131", "--cpus", "4")[0] == 0


def test_local_status_claims_no_token(fake_machine, monkeypatch):
    tree = _isolated_machine(fake_machine, monkeypatch)
    monkeypatch.delenv("PYIRQBALANCE_TOKEN", raising=False)
    code, text = run("--local", "--sysroot", str(tree), "status")
    assert code == 0
    assert ("writes:     local mode: this command writes /proc/irq itself (needs root), "
            "no daemon API") in text
    assert "token" not in text


def test_summary_with_one_sample_says_when_the_next_comes(fake_machine, monkeypatch):
    from pyirqbalance.engine.model import Snapshot
    from pyirqbalance.history import HistoryConfig
    from pyirqbalance.history.recorder import reading_from_snapshot
    from pyirqbalance.history.records import iso_time

    tree = _isolated_machine(fake_machine, monkeypatch)
    path = tree / "var" / "lib" / "pyirqbalance" / "history.sqlite"
    path.parent.mkdir(parents=True)
    ts = 1_800_000_000.0
    snap = Snapshot(ts, (tree / "proc" / "interrupts").read_bytes(),
                    (tree / "proc" / "stat").read_text())
    with HistoryStore.open(HistoryConfig(path=str(path))) as store:
        store.record(reading_from_snapshot(snap, None))
    code, text = run("--local", "--sysroot", str(tree), "summary", f"--start={int(ts) - 60}",
                     f"--stop={int(ts) + 600}")
    assert code == 0
    assert text.splitlines()[1] == (
        f"history has one sample, at {iso_time(ts)}; a window needs two: the next is "
        f"recorded at about {iso_time(ts + 60)} (one every 60 s)")
    assert "None" not in text
