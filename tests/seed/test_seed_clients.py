"""The seed tools' clients, written from their wire contract, against a live daemon.

A fake 2-CPU machine (a_desktop4 with two cores) under ``python -m pyirqbalance
--api-listen``, counters driven by the simulator. Each client runs as root (token-less
writes allowed: the peer's socket is uid 0 in /proc/net/tcp) and as nobody (refused), and
the tests check what it prints and what smp_affinity holds.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime

import pytest

from pyirqbalance.api.gate import SHARE_READING
from tests.seed.live import TICK_S, LiveDaemon, run, wait_for

#: a_desktop4's IRQs (tests/machines/a_desktop4.json) and their rates per simulator tick.
RATES = {4: 3, 132: 600, 125: 120, 126: 900, 128: 3000, 129: 800, 130: 1500, 131: 200}
#: LOC rises by 100 per CPU each tick (tests/oracle/mkfake.render_interrupts).
LOC_PER_TICK = 100
ACPI = 9        # no PCI device, one package: the balancer keeps it on all CPUs (mask 3)
IDLE = (122, 127, 1, 8, 12, 120)   # IRQs that never fire: their counts are fixed
PROMPTS = ("enter: ", "start (mmddHHMM): ", "stop (mmddHHMM): ", "IRQ: ",
           "CPU mask (1 for cpu0, 2 for cpu1): ")


def rows_of(text: str) -> dict[str, list[int]]:
    """``{label: [cpu0, cpu1]}`` of a /proc/interrupts text with two CPU columns."""
    out = {}
    for line in text.splitlines()[1:]:
        label, _, rest = line.partition(":")
        cells = rest.split()
        if len(cells) >= 2 and cells[0].isdigit() and cells[1].isdigit():
            out[label.strip()] = [int(cells[0]), int(cells[1])]
    return out


def table(text: str) -> tuple[dict[str, list[int]], str]:
    """The menu client's table (after its prompts) and its last line, the message."""
    lines = text.splitlines()
    head = next(k for k, line in enumerate(lines) if line.split()[-3:] == ["IRQ", "CPU0", "CPU1"])
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[head + 1:-1]}
    return rows, lines[-1]


def menu(daemon: LiveDaemon, *answers: str, nobody: bool = False) -> str:
    out = daemon.client("irqrest_menu.py", daemon.url, stdin="\n".join(answers) + "\n",
                        nobody=nobody)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for prompt in PROMPTS:   # input() prompts end without a newline
        text = text.replace(prompt, "")
    return text


def cli(daemon: LiveDaemon, *args: str, nobody: bool = False) -> str:
    out = daemon.client("irqinfo_cli.py", "--url", "http://127.0.0.1", "--port",
                        str(daemon.port), *args, nobody=nobody)
    assert out.returncode == 0, out.stderr
    return out.stdout


def curl(daemon: LiveDaemon, *args: str, nobody: bool = False) -> tuple[int, str]:
    """(HTTP status, body) of a curl command line."""
    out = run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], nobody=nobody)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


# --------------------------------------------------------------------------
# irqRestServer's menu client
# --------------------------------------------------------------------------


@pytest.mark.parametrize("nobody", [False, True])
def test_menu_summary_since_boot(daemon: LiveDaemon, nobody: bool):
    shown, message = table(menu(daemon, "1", nobody=nobody))
    assert message.startswith("No start date specified.  Returning values since last reboot: ")
    now = rows_of(daemon.interrupts())
    numbered = {k: v for k, v in now.items() if k.isdigit()}
    assert set(shown) == set(numbered) | {"total"}
    for irq in IDLE:
        assert shown[str(irq)] == numbered[str(irq)], irq
    assert shown["total"] == [sum(v[k] for i, v in shown.items() if i != "total") for k in (0, 1)]


def test_menu_window_in_mmddhhmm(daemon: LiveDaemon):
    daemon.wait_passes(2)
    t0, t1 = datetime.fromtimestamp(time.time() - 600), datetime.fromtimestamp(time.time() + 120)
    shown, message = table(menu(daemon, "2", f"{t0:%m%d%H%M}", f"{t1:%m%d%H%M}"))
    # mmddHHMM is local time in the current year; the message is irqRestServer's (the notes
    # on coverage are in a key of their own, see test_seed_wire.py).
    assert message == "Success"
    since_boot = rows_of(daemon.interrupts())
    assert set(shown) == {k for k in since_boot if k.isdigit()} | {"total"}   # every IRQ
    assert shown[str(128)][0] + shown[str(128)][1] > 0          # the busiest IRQ fired
    for irq, counts in shown.items():
        if irq != "total":
            assert sum(counts) <= sum(since_boot[irq]), irq      # a window within the boot
    assert all(shown[str(irq)] == [0, 0] for irq in IDLE)


def test_menu_window_in_the_first_minute(tmp_path):
    """A daemon just started, history at its default (one recorded reading a minute): the
    menu's window ending this minute has every IRQ's counts up to now, and says Success."""
    d = LiveDaemon(tmp_path, "{}\n")
    try:
        wait_for(lambda: d.health() is not None)
        now = time.time()
        t0, t1 = datetime.fromtimestamp(now - 300), datetime.fromtimestamp(now)

        def counted() -> bool:    # the simulator fires every 0.25 s: wait for one tick
            shown, message = table(menu(d, "2", f"{t0:%m%d%H%M}", f"{t1:%m%d%H%M}"))
            assert message == "Success"
            return sum(shown["128"]) > 0
        wait_for(counted)
        shown, _ = table(menu(d, "2", f"{t0:%m%d%H%M}", f"{t1:%m%d%H%M}"))
        assert set(shown) == {k for k in rows_of(d.interrupts()) if k.isdigit()} | {"total"}
        assert all(shown[str(irq)] == [0, 0] for irq in IDLE)
    finally:
        d.close()
    assert not d.errors and "Traceback" not in d.log(), d.log()


@pytest.mark.parametrize("start", ["13401234", "yesterday"])
def test_menu_invalid_date_is_a_message(daemon: LiveDaemon, start: str):
    assert menu(daemon, "2", start, "").splitlines()[-1] == "start is not a valid format (%m%d%H%M)"


def test_menu_set_affinity_as_root_pins(daemon: LiveDaemon):
    text = menu(daemon, "3", str(ACPI), "1")
    changed, message = text.splitlines()[-2:]
    # (The simulator re-renders a written file in the kernel's format: compare values.)
    words = changed.split()
    assert words[:5] == ["Affinity", "for", "9", "changed", "from"] and words[6] == "to", text
    assert (int(words[5], 16), int(words[7], 16), message) == (3, 1, "Affinity changed")
    wait_for(lambda: daemon.mask(ACPI) == 1)
    daemon.wait_passes(3)
    assert daemon.mask(ACPI) == 1            # pinned: the balancer leaves it on CPU0
    assert daemon.health()["overrides"][str(ACPI)] == "0"
    _, body = daemon.json("DELETE", f"/irqsummary/{ACPI}")
    assert body == {"irq": ACPI, "override": False}
    wait_for(lambda: daemon.mask(ACPI) == 3)  # released: back on its package


def test_menu_set_affinity_as_nobody_is_refused(daemon: LiveDaemon):
    before = daemon.mask(4)
    text = menu(daemon, "3", "4", "2", nobody=True)
    assert text.splitlines()[-1] == ("state-changing requests need root on this host "
                                     "(no api token_file is configured)")
    assert "4" not in daemon.health()["overrides"]
    daemon.wait_passes(1)
    assert daemon.mask(4) == before


def test_menu_unknown_irq(daemon: LiveDaemon):
    assert menu(daemon, "3", "777", "1").splitlines()[-1] == "Invalid irq-id specified"


# --------------------------------------------------------------------------
# irqbalancing's argparse client
# --------------------------------------------------------------------------


@pytest.mark.parametrize("nobody", [False, True])
def test_cli_distribution_is_proc_interrupts(daemon: LiveDaemon, nobody: bool):
    text = cli(daemon, "--view", "distribution", nobody=nobody)
    now = daemon.interrupts()
    assert text.splitlines()[0] == now.splitlines()[0]
    assert [line.split(":")[0] for line in text.splitlines()] == [
        line.split(":")[0] for line in now.splitlines()]
    for irq in IDLE:
        assert rows_of(text)[str(irq)] == rows_of(now)[str(irq)]


def test_cli_cpu_summary_measures_the_window(daemon: LiveDaemon):
    ticks = daemon.ticks
    text = cli(daemon, "--view", "cpu-summary", "--second", "2")
    # The ticks while the client ran (one more in flight), and those of the second before:
    # the first reading may be one another sampling request took up to SHARE_READING ago.
    ticks = daemon.ticks - ticks + 1 + math.ceil(SHARE_READING / TICK_S)
    lines = text.splitlines()
    assert lines[0] == "Interrupt handled by CPU in last 2 seconds"
    got = dict(line.split(": ") for line in lines[1:] if line)
    assert sorted(got) == ["CPU0", "CPU1"]
    total = sum(int(v) for v in got.values())
    # Every simulator tick adds every IRQ's rate once and 100 LOC per CPU: the sum over the
    # CPUs is a whole number of ticks (about 2 s / 0.25 s of them).
    per_tick = sum(RATES.values()) + 2 * LOC_PER_TICK
    # Whole ticks, at least one in 2 s; no more than the simulator did meanwhile (a busy
    # machine stretches the window: the daemon reads when it gets the CPU again).
    assert total % per_tick == 0 and 1 <= total // per_tick <= ticks, (total, per_tick, ticks)


def test_cli_set_affinity_as_root_and_as_nobody(daemon: LiveDaemon):
    assert cli(daemon, "--irq", "126", "--cpu", "2").strip() == (
        "Successfully set affinity for IRQ 126")
    wait_for(lambda: daemon.mask(126) == 2)
    assert daemon.health()["overrides"]["126"] == "1"       # every seed write pins
    daemon.wait_passes(2)
    assert daemon.mask(126) == 2
    assert cli(daemon, "--irq", "126", "--cpu", "1", nobody=True).strip() == (
        "Unable to set affinity for IRQ 126. Received status code: 403")
    assert cli(daemon, "--irq", "999", "--cpu", "1").strip() == (
        "Unable to set affinity for IRQ 999. Received status code: 404")
    daemon.wait_passes(1)
    assert daemon.mask(126) == 2


# --------------------------------------------------------------------------
# curl, one request per seed route
# --------------------------------------------------------------------------


def test_curl_irq_and_put_form(daemon: LiveDaemon):
    def raw() -> str:
        return daemon.affinity_text(131)

    def shown_as_the_file_holds_it() -> bool:
        # The balancer may move IRQ 131 between the request and the read: ask again then.
        status, body = curl(daemon, "-H", "Accept: application/json",
                            f"{daemon.url}/irqsummary/131")
        data = json.loads(body)
        return status == 200 and data["irq_id"] == 131 and data["current affinity"] == raw()

    wait_for(shown_as_the_file_holds_it)
    status, body = curl(daemon, f"{daemon.url}/irqsummary/4000")
    assert (status, json.loads(body)) == (404, {"message": "invalid irq-id"})
    status, body = curl(daemon, "-X", "PUT", "-d", "cpu=1", f"{daemon.url}/irqsummary/131")
    data = json.loads(body)
    assert status == 200 and data["message"] == "Affinity changed"
    assert int(data["old affinity"], 16) in (1, 2, 3) and int(data["new affinity"], 16) == 1
    wait_for(lambda: daemon.mask(131) == 1)
    status, body = curl(daemon, "-X", "PUT", "-d", "cpu=4", f"{daemon.url}/irqsummary/131")
    assert status == 400 and json.loads(body)["message"].startswith(
        "Invalid cpu specified: cpu: names no online CPU")
    status, body = curl(daemon, "-X", "PUT", "-d", "cpu=2", f"{daemon.url}/irqsummary/131",
                        nobody=True)
    assert status == 403 and daemon.mask(131) == 1


def test_curl_distribution_json_and_by_cpu(daemon: LiveDaemon):
    status, body = curl(daemon, f"{daemon.url}/get_current_distribution?format=json")
    data = json.loads(body)
    assert status == 200 and data["cpuCount"] == 2
    assert {"CPU0.132", "CPU1.132", "CPU0.LOC", "CPU1.LOC"} <= set(data)
    assert [data[f"CPU{c}.127"] for c in (0, 1)] == rows_of(daemon.interrupts())["127"]
    status, body = curl(daemon, f"{daemon.url}/get_interrupt_by_cpu?cpu=1&second=1")
    assert status == 200 and list(json.loads(body)) == ["CPU1"]
    status, body = curl(daemon, f"{daemon.url}/get_interrupt_by_cpu?cpu=2&second=1")
    assert status == 404


def test_curl_set_affinity_route(daemon: LiveDaemon):
    status, body = curl(daemon, "-X", "PUT", f"{daemon.url}/set_affinity/125?cpu=1")
    assert (status, body) == (200, "Ok")
    wait_for(lambda: daemon.mask(125) == 1)
    status, _ = curl(daemon, "-X", "PUT", f"{daemon.url}/set_affinity/9999?cpu=1")
    assert status == 404
    status, _ = curl(daemon, "-X", "PUT", f"{daemon.url}/set_affinity/125?cpu=2", nobody=True)
    assert status == 403 and daemon.mask(125) == 1


def test_api_turns_history_and_metrics_on(daemon: LiveDaemon):
    health = daemon.health()
    assert health["history"]["enabled"] is True
    assert health["history"]["path"].startswith(str(daemon.tree))   # inside the --sysroot tree
    status, body = daemon.request("GET", "/metrics")
    assert status == 200 and b"pyirqbalance_passes_total" in body
