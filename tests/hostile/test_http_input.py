"""Hostile HTTP input against the real daemon process: absurd windows, big and deep
bodies, huge masks, non-ASCII digits. Each answer is a 4xx with a short JSON message,
never a 500, and the daemon keeps balancing with no traceback in its log."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.seed.live import LiveDaemon, wait_for

#: An error body is the message and a parameter name: a few hundred bytes at most.
SHORT = 400


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = LiveDaemon(tmp_path_factory.mktemp("hostile"))
    try:
        d.wait_ready()
        start = d.cycle()
        yield d
        d.wait_passes(2)                       # still balancing after everything below
        assert d.cycle() >= start + 2
    finally:
        d.close()
    assert not d.errors, d.errors
    assert "Traceback" not in d.log() and "internal error" not in d.log(), d.log()


def get(daemon: LiveDaemon, path: str, **params: str) -> tuple[int, bytes]:
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    return daemon.request("GET", path + query)


def short_4xx(status: int, body: bytes, want: int = 400) -> dict:
    assert status == want, body[:300]
    assert len(body) < SHORT, len(body)
    return json.loads(body)


# --------------------------------------------------------------------------
# windows outside what a calendar can show
# --------------------------------------------------------------------------

WINDOWS = [
    {"start": "0", "stop": "1e300"},
    {"start": "1e18", "stop": "1e19"},
    {"start": "-99999999999999999999d"},
    {"start": "-1d", "stop": "inf"},
    {"start": "nan"},
    {"start": "0001-01-01T00:00:00"},
]


@pytest.mark.parametrize("path", ["/irqsummary", "/api/v1/irqsummary", "/api/v1/report"])
@pytest.mark.parametrize("params", WINDOWS)
def test_absurd_windows_are_400(daemon: LiveDaemon, path: str, params: dict):
    status, body = get(daemon, path, **params)
    if path == "/irqsummary" and status == 200:
        # The seed server's answer to a date it cannot read: 200 with only a message.
        message = json.loads(body)
        assert message in [{"message": f"{key} is not a valid format (%m%d%H%M)"}
                           for key in params]
        return
    data = short_4xx(status, body)
    assert data["parameter"] in ("start", "stop") and "error" in data


def test_representable_window_is_answered(daemon: LiveDaemon):
    status, body = get(daemon, "/api/v1/irqsummary", start="0", stop=str(int(time.time())))
    assert status == 200 and json.loads(body)["source"] == "history"


# --------------------------------------------------------------------------
# bodies
# --------------------------------------------------------------------------


def test_body_over_64_kib_is_413(daemon: LiveDaemon):
    body = json.dumps({"cpus": "0", "pad": "x" * (70 << 10)}).encode()
    status, _ = daemon.request("PUT", "/api/v1/irqsummary/128", data=body,
                               headers={"Content-Type": "application/json"})
    assert status == 413


def test_big_body_is_refused_before_it_is_sent(daemon: LiveDaemon):
    """50 MB announced, 1 KB sent: the answer comes without waiting for the rest."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"PUT /irqsummary/128 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: 52428800\r\n\r\n" + b"[" * 1024)
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


@pytest.mark.parametrize("depth, status", [(60_000, 400), (100_000, 413)])
def test_deep_json_is_4xx_not_a_crash(daemon: LiveDaemon, depth: int, status: int):
    status_got, body = daemon.request("PUT", "/api/v1/irqsummary/128", data=b"[" * depth,
                                      headers={"Content-Type": "application/json"})
    assert status_got == status, body[:200]
    if status == 400:
        assert short_4xx(status_got, body)["parameter"] == "body"


def test_unauthenticated_body_is_not_parsed(daemon: LiveDaemon):
    """As nobody, a broken body gets the refusal, not a parse error: auth comes first."""
    out = daemon.client("http_put.py", daemon.url + "/api/v1/irqsummary/128", "[" * 1000,
                        nobody=True)
    status, _, body = out.stdout.partition(" ")
    assert status == "403", out.stdout + out.stderr
    assert "root on this host" in json.loads(body)["error"]


def test_megabyte_mask_is_quick_and_not_echoed(daemon: LiveDaemon):
    mask = ",".join(["ffffffff"] * 20_000)        # 180 KB, wider than any machine
    cpu = daemon.cpu_seconds()
    status, body = daemon.request("PUT", f"/set_affinity/128?cpu={mask}")
    # The daemon's CPU time, not the wall clock (which a busy machine stretches); generous:
    # a quadratic parse took seconds.
    assert daemon.cpu_seconds() - cpu < 10
    data = short_4xx(status, body)
    assert data["parameter"] == "cpu" and "ffffffff" * 9 not in data["message"]


def test_long_values_are_echoed_as_a_short_prefix(daemon: LiveDaemon):
    status, body = get(daemon, "/api/v1/irqsummary", start="x" * 100_000)
    assert "x" * 64 in short_4xx(status, body)["error"]
    status, body = get(daemon, "/api/v1/get_current_distribution", format="y" * 100_000)
    assert short_4xx(status, body)["parameter"] == "format"


# --------------------------------------------------------------------------
# numbers: ASCII digits only
# --------------------------------------------------------------------------

NOT_DIGITS = ["\u0661\u0662\u0662", "\uff11\uff12\uff12", "+122", "1_22", " 122", "122 ",
              "0x7a", "1e2"]


@pytest.mark.parametrize("text", NOT_DIGITS)
@pytest.mark.parametrize("route", ["/irqsummary/{}", "/api/v1/irqsummary/{}"])
def test_irq_in_url_is_ascii_digits(daemon: LiveDaemon, route: str, text: str):
    status, body = daemon.request("GET", route.format(urllib.parse.quote(text)))
    assert short_4xx(status, body)["parameter"] == "irq"


@pytest.mark.parametrize("text", NOT_DIGITS)
def test_irq_of_a_write_is_ascii_digits(daemon: LiveDaemon, text: str):
    status, body = daemon.request("PUT", f"/set_affinity/{urllib.parse.quote(text)}?cpu=1")
    assert short_4xx(status, body)["parameter"] == "irq"
    wait_for(lambda: daemon.health() is not None)


@pytest.mark.parametrize("text", NOT_DIGITS)
@pytest.mark.parametrize("path", ["/get_interrupt_by_cpu", "/api/v1/get_interrupt_by_cpu"])
def test_cpu_in_query_is_ascii_digits(daemon: LiveDaemon, path: str, text: str):
    status, body = get(daemon, path, cpu=text, second="0")
    assert short_4xx(status, body)["parameter"] == "cpu"
