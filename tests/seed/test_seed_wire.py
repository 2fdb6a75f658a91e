"""The seed routes against what the two original servers answered on the same fake machine.

tests/fixtures/seed/originals.json holds irqRestServer's and irqbalancing's answers (status,
Content-Type, body) to the same requests, recorded by running both unchanged over the
2-CPU machine of tests/seed/live.py (tests/fixtures/seed/record_originals.py, provenance in
tests/fixtures/SOURCES.md). Here the same machine is built again and the API application
answers in-process: where pyirqbalance matches the original, status, Content-Type and body
bytes are compared; where it differs on purpose (docs/api.md, "Differences from the seed
servers"), what the table says is checked.

irqRestServer's logs were made three and two minutes before the requests; the second one
saw IRQ 125 fire 100 times on CPU0 and IRQ 126 200 times on CPU1. The history store here
gets the same two readings.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pyirqbalance.api.context import ApiContext, LiveState
from pyirqbalance.api.server import create_app
from pyirqbalance.engine.model import Snapshot
from pyirqbalance.history import HistoryConfig, HistoryStore
from pyirqbalance.history.recorder import reading_from_snapshot
from pyirqbalance.kernel.sysroot import SysRoot
from tests.oracle import mkfake
from tests.seed.live import two_cpu_machine

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seed" / "originals.json"
ORIGINALS = json.loads(FIXTURE.read_text())
TOKEN = "wire-token"
NOT_ENOUGH = b'{"message":"Not enough data to produce interrupt count"}\n'


def original(server: str, case: str) -> dict[str, Any]:
    found = [a for a in ORIGINALS["answers"] if a["server"] == server and a["case"] == case]
    assert len(found) == 1, (server, case)
    return found[0]


def fired(text: str) -> str:
    """/proc/interrupts after IRQ 125 and 126 fired as between the original's two logs
    (the same edit record_originals.py made)."""
    out = text.replace("125:      50211          0", "125:      50311          0")
    out = out.replace("126:          0     310442", "126:          0     310642")
    assert out.count("50311") == 1 and out.count("310642") == 1
    return out


class Wire:
    """The API application in-process over the seed machine, with a history store."""

    def __init__(self, tmp_path: Path, *, btime: int, readings: list[float],
                 live_fired: bool = True) -> None:
        self.tree = tmp_path / "tree"
        mkfake.build_tree(two_cpu_machine(), str(self.tree), force=True)
        self.root = SysRoot(self.tree)
        stat = Path(self.root.proc("stat"))
        stat.write_text(stat.read_text().replace("btime 1700000000", f"btime {btime}"))
        self.stat = stat.read_text()
        interrupts = Path(self.root.proc("interrupts"))
        self.before = interrupts.read_text()
        self.after = fired(self.before)
        self.history = HistoryConfig(path=str(tmp_path / "history.sqlite"))
        with HistoryStore.open(self.history) as store:
            for k, ts in enumerate(readings):
                text = self.before if k == 0 else self.after
                store.record(reading_from_snapshot(Snapshot(ts, text.encode(), self.stat), None))
        if live_fired:
            interrupts.write_text(self.after)
        self.ctx = ApiContext(root=self.root, live=LiveState(self.root), history=self.history,
                              token=TOKEN, local_root_writes=False)
        self.client = create_app(self.ctx).test_client()

    def ask(self, method: str, path: str, form: dict[str, str] | None = None,
            auth: bool = True) -> tuple[int, str, bytes]:
        headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
        r = self.client.open(path, method=method, data=form, headers=headers)
        return r.status_code, r.headers["Content-Type"], r.get_data()

    def json(self, path: str) -> dict[str, Any]:
        status, ctype, body = self.ask("GET", path)
        assert (status, ctype) == (200, "application/json"), body
        return json.loads(body)  # type: ignore[no-any-return]


def _minute(ts: float) -> float:
    return ts - ts % 60


@pytest.fixture
def wire(tmp_path: Path) -> Wire:
    now = time.time()
    a, b = _minute(now) - 180, _minute(now) - 120
    w = Wire(tmp_path, btime=int(now) - 3600, readings=[a, b])
    w.a, w.b = a, b  # type: ignore[attr-defined]
    return w


def same(ours: tuple[int, str, bytes], theirs: dict[str, Any]) -> None:
    assert ours == (theirs["status"], theirs["content_type"], theirs["body"].encode()), (
        ours, theirs)


# --------------------------------------------------------------------------
# irqRestServer: /irqsummary
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case, query", [
    ("empty start and stop", "start=&stop="),
    ("empty start", "start=&stop=12071310"),
    ("empty stop", "start=12071310&stop="),
    ("7-digit start", "start=1207114&stop=12071311"),
    ("7-digit stop", "start=12071310&stop=1207114"),
    ("month 13", "start=13401234"),
    ("a word", "start=yesterday&stop="),
])
def test_dates_it_cannot_read_are_the_same_message(wire: Wire, case: str, query: str):
    same(wire.ask("GET", "/irqsummary?" + query), original("irqRestServer", case))


def test_start_after_stop_is_the_same_message(wire: Wire):
    same(wire.ask("GET", f"/irqsummary?start={int(wire.b)}&stop={int(wire.a)}"),  # type: ignore[attr-defined]
         original("irqRestServer", "start after stop"))


def test_short_numbers_are_not_epoch_seconds_on_the_seed_routes(wire: Wire):
    for value in ("1", "120", "1207114", "99999999", ".5"):
        body = wire.json(f"/irqsummary?start={value}")
        assert body == {"message": "start is not a valid format (%m%d%H%M)"}, value
    # Nine digits and more are epoch seconds (1973 onwards), as on /api/v1.
    assert wire.json(f"/irqsummary?start={int(wire.a)}&stop={int(wire.b)}")[  # type: ignore[attr-defined]
        "message"] == "Success"


def _window_like_the_original(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> None:
    """Ours lists every IRQ; the original's log (egrep '^[ ,1-9]+:') lost 0, 120 and 130."""
    data = ours[key]
    assert {k: data[k] for k in theirs[key]} == theirs[key]
    assert set(data) - set(theirs[key]) == {"0", "120", "130"}
    assert all(data[k] == [0, 0] for k in ("0", "120", "130"))


def test_window_every_irq_and_success(wire: Wire):
    theirs = json.loads(original("irqRestServer", "window")["body"])
    ours = wire.json(f"/irqsummary?start={int(wire.a)}&stop={int(wire.b)}")  # type: ignore[attr-defined]
    assert ours["message"] == theirs["message"] == "Success"
    _window_like_the_original(ours, theirs, "irq_data")
    assert set(ours) == {"message", "irq_data", "cpus", "notes"}
    assert ours["cpus"] == [0, 1]


def test_start_equals_stop_is_zeros_and_success(wire: Wire):
    theirs = json.loads(original("irqRestServer", "start equals stop")["body"])
    ours = wire.json(f"/irqsummary?start={int(wire.a)}&stop={int(wire.a)}")  # type: ignore[attr-defined]
    assert ours["message"] == theirs["message"] == "Success"
    _window_like_the_original(ours, theirs, "irq_data")
    assert all(v == [0, 0] for v in ours["irq_data"].values())


def test_start_without_stop_answers_under_irqdata(wire: Wire):
    theirs = json.loads(original("irqRestServer", "start only")["body"])
    start = datetime.fromtimestamp(wire.a).strftime("%m%d%H%M")  # type: ignore[attr-defined]
    ours = wire.json(f"/irqsummary?start={start}")
    assert "irq_data" not in ours and "irq_data" not in theirs
    assert theirs["message"] == "IRQ data from " + original("irqRestServer", "start only")[
        "path"].split("=")[1]
    assert ours["message"] == f"IRQ data from {start}"
    _window_like_the_original(ours, theirs, "irqData")


def test_start_before_the_boot_keeps_the_message_and_gives_the_counts(tmp_path: Path):
    now = time.time()
    boot = _minute(now) - 600
    w = Wire(tmp_path, btime=int(boot), readings=[boot + 60, boot + 120])
    theirs = original("irqRestServer", "start before the boot")
    assert json.loads(theirs["body"]) == {
        "message": "start is prior to last reboot: " + ORIGINALS["times"]["boot"]}
    ours = w.json(f"/irqsummary?start={int(boot) - 60}&stop={int(boot) + 120}")
    assert ours["message"] == ("start is prior to last reboot: "
                               + datetime.fromtimestamp(boot).strftime("%m%d%H%M"))
    # Summed across the boot: the first reading's counts since boot, and what fired after.
    counts = {r.split(":")[0].strip(): [int(x) for x in r.split()[1:3]]
              for r in w.after.splitlines()[1:] if r.split(":")[0].strip().isdigit()}
    assert {k: v for k, v in ours["irq_data"].items() if k != "total"} == counts
    assert "counts before that reboot are summed per boot" in ours["notes"]


def test_window_before_any_sample_is_not_enough_data(wire: Wire):
    theirs = original("irqRestServer", "window after the last log")
    assert theirs["body"].encode() == NOT_ENOUGH
    a = int(wire.a)  # type: ignore[attr-defined]
    same(wire.ask("GET", f"/irqsummary?start={a - 600}&stop={a - 300}"), theirs)
    # A window that has not begun yet has nothing either.
    same(wire.ask("GET", f"/irqsummary?start={int(time.time()) + 600}"), theirs)


def test_window_ending_now_ends_at_a_live_reading(tmp_path: Path):
    """The daemon's first minute: one (baseline) reading in the store, nothing recorded after
    it. The window still has counts: up to /proc/interrupts read now."""
    now = time.time()
    w = Wire(tmp_path, btime=int(now) - 3600, readings=[now - 30])
    for query in (f"start={int(now) - 60}&stop={int(now)}", f"start={int(now) - 60}"):
        ours = w.json("/irqsummary?" + query)
        data = ours.get("irq_data") or ours["irqData"]
        assert data["125"] == [100, 0] and data["126"] == [0, 200], query
        assert data["total"] == [100, 200]
        assert all(v == [0, 0] for k, v in data.items() if k not in ("125", "126", "total"))
        assert any(n.startswith("ends at /proc/interrupts read at") for n in ours["notes"])
    assert w.json(f"/irqsummary?start={int(now) - 60}&stop={int(now)}")["message"] == "Success"


def test_window_ending_in_the_minute_of_the_first_sample(tmp_path: Path):
    """Asked "until now" as mmddHHMM in the daemon's first minute: the stop (the minute's
    start) is before the only recorded sample, but within its minute. The window ends at a
    live reading, counted from that sample; a stop a minute earlier has no data."""
    now = time.time()
    first = now - 100     # however long ago: the rule follows the sample, not the clock
    w = Wire(tmp_path, btime=int(now) - 3600, readings=[first])
    ours = w.json(f"/irqsummary?start={int(first) - 300}&stop={int(first) - 30}")
    assert ours["message"] == "Success"
    assert ours["irq_data"]["total"] == [100, 200]
    same(w.ask("GET", f"/irqsummary?start={int(first) - 300}&stop={int(first) - 90}"),
         original("irqRestServer", "window after the last log"))


def test_window_before_the_first_recorded_sample_counts_from_the_first_reading(tmp_path: Path):
    """The daemon's first seconds: nothing recorded yet, only the reading the API took when
    it started. A window ending now counts from that reading."""
    now = time.time()
    w = Wire(tmp_path, btime=int(now) - 3600, readings=[], live_fired=False)
    w.ctx.live.refresh()                             # ApiService.start's first reading
    Path(w.root.proc("interrupts")).write_text(w.after)
    ours = w.json(f"/irqsummary?start={int(now) - 300}&stop={int(now)}")
    assert ours["message"] == "Success"
    assert ours["irq_data"]["125"] == [100, 0] and ours["irq_data"]["126"] == [0, 200]
    assert ours["irq_data"]["total"] == [100, 200]


def test_since_boot_shows_the_boot_as_mmddhhmm(wire: Wire):
    theirs = json.loads(original("irqRestServer", "since boot")["body"])
    assert theirs["message"].endswith(": " + ORIGINALS["times"]["boot"])
    ours = wire.json("/irqsummary")
    btime = int(wire.stat.split("btime ")[1].split()[0])
    assert ours["message"] == ("No start date specified.  Returning values since last reboot: "
                               + datetime.fromtimestamp(btime).strftime("%m%d%H%M"))
    assert ours["irq_data"]["125"] == [50311, 0] and ours["irq_data"]["0"] == [40, 0]


def test_irq_and_unknown_irq(wire: Wire):
    theirs = json.loads(original("irqRestServer", "irq")["body"])
    ours = wire.json("/irqsummary/9")
    assert {k: ours[k] for k in theirs} == theirs
    unknown = original("irqRestServer", "unknown irq")
    status, ctype, body = wire.ask("GET", "/irqsummary/777")
    assert (ctype, body) == (unknown["content_type"], unknown["body"].encode())
    assert (status, unknown["status"]) == (404, 200)          # deliberate: 404
    assert original("irqRestServer", "irq not a number")["status"] == 404
    assert wire.ask("GET", "/irqsummary/abc")[0] == 400                # deliberate: 400


def test_put_form_cpu(wire: Wire):
    theirs = json.loads(original("irqRestServer", "put cpu=1")["body"])
    status, ctype, body = wire.ask("PUT", "/irqsummary/9", {"cpu": "1"})
    ours = json.loads(body)
    assert (status, ctype) == (200, "application/json")
    assert ours["message"] == theirs["message"] and ours["old affinity"] == theirs["old affinity"]
    assert int(ours["new affinity"], 16) == int(theirs["new affinity"], 16) == 1
    for case, form, status in (("put cpu=4", {"cpu": "4"}, 400), ("put without cpu", {}, 400),
                               ("put unknown irq", {"cpu": "1"}, 404)):
        message = json.loads(original("irqRestServer", case)["body"])["message"]
        got = wire.ask("PUT", "/irqsummary/" + ("777" if "unknown" in case else "9"), form)
        assert got[0] == status, case
        assert json.loads(got[2])["message"].startswith(message), (case, got)


def test_root_answers(wire: Wire):
    assert original("irqbalancing", "root")["status"] == 200
    status, ctype, body = wire.ask("GET", "/")
    assert (status, ctype) == (200, original("irqbalancing", "root")["content_type"])
    assert b"/get_current_distribution" in body and b"/irqsummary" in body


# --------------------------------------------------------------------------
# irqbalancing: /get_current_distribution, /get_interrupt_by_cpu, /set_affinity
# --------------------------------------------------------------------------


@pytest.fixture
def static(tmp_path: Path) -> Wire:
    """The machine as the originals saw it (no counts added)."""
    now = time.time()
    return Wire(tmp_path, btime=int(now) - 3600, readings=[now - 120], live_fired=False)


@pytest.mark.parametrize("case, query", [
    ("distribution json", "?format=json"),
    ("distribution xml", "?format=xml"),
    ("distribution empty format", "?format="),
])
def test_distribution_json_is_byte_for_byte(static: Wire, case: str, query: str):
    same(static.ask("GET", "/get_current_distribution" + query), original("irqbalancing", case))


@pytest.mark.parametrize("case, query", [("distribution", ""), ("distribution raw", "?format=raw")])
def test_distribution_raw_is_proc_interrupts(static: Wire, case: str, query: str):
    theirs = original("irqbalancing", case)
    status, ctype, body = static.ask("GET", "/get_current_distribution" + query)
    assert (status, body) == (theirs["status"], theirs["body"].encode())
    assert ctype == "text/plain; charset=utf-8"                       # deliberate


@pytest.mark.parametrize("case, query", [
    ("by cpu", "?second=0"), ("by cpu 1", "?cpu=1&second=0"), ("by cpu 5", "?cpu=5&second=0"),
])
def test_by_cpu_is_byte_for_byte(static: Wire, case: str, query: str):
    same(static.ask("GET", "/get_interrupt_by_cpu" + query), original("irqbalancing", case))


@pytest.mark.parametrize("case, query", [
    ("by cpu abc", "?cpu=abc&second=0"), ("by cpu second abc", "?second=abc"),
])
def test_by_cpu_bad_input_is_400_not_500(static: Wire, case: str, query: str):
    assert original("irqbalancing", case)["status"] == 500
    assert static.ask("GET", "/get_interrupt_by_cpu" + query)[0] == 400


def test_by_cpu_second_up_to_an_hour(static: Wire, monkeypatch: pytest.MonkeyPatch):
    from pyirqbalance.api import routes_seed

    waited: list[float] = []
    monkeypatch.setattr(routes_seed.time, "sleep", waited.append)   # no hour-long test
    for value in ("61", "3600"):
        status, _, body = static.ask("GET", f"/get_interrupt_by_cpu?second={value}")
        assert (status, body) == (200, b'{"CPU0":0,"CPU1":0}\n'), value
    assert waited == [61.0, 3600.0]
    monkeypatch.undo()
    for value in ("3601", "-1", "nan"):
        status, _, body = static.ask("GET", f"/get_interrupt_by_cpu?second={value}")
        assert status == 400 and b"0 to 3600" in body, value


@pytest.mark.parametrize("case, path", [
    ("set f", "/set_affinity/9?cpu=f"), ("set 2", "/set_affinity/9?cpu=2"),
    ("set unknown irq", "/set_affinity/777?cpu=1"),
])
def test_set_affinity_is_byte_for_byte(static: Wire, case: str, path: str):
    same(static.ask("PUT", path), original("irqbalancing", case))


def test_set_affinity_keeps_the_online_cpus_of_the_mask(static: Wire):
    static.ask("PUT", "/set_affinity/9?cpu=2")
    assert static.ask("PUT", "/set_affinity/9?cpu=f")[0] == 200
    # CPUs 0-1 are online: the kernel keeps f & 3.
    assert int(Path(static.root.proc("irq", "9", "smp_affinity")).read_text(), 16) == 3
    assert static.ctx.overrides.get(9) == 3
    status, _, body = static.ask("PUT", "/set_affinity/9?cpu=c")     # CPUs 2-3 only
    assert status == 400 and b"names no online CPU" in body


def test_set_by_get_is_not_allowed(static: Wire):
    assert static.ask("GET", "/set_affinity/9?cpu=1")[0] == original(
        "irqbalancing", "set by GET")["status"] == 405


def test_writes_need_root_or_the_token(static: Wire):
    assert static.ask("PUT", "/set_affinity/9?cpu=1", auth=False)[0] == 401
