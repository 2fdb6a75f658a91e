"""build_extras: the daemon's history, API and metrics from a validated configuration."""

from __future__ import annotations

import logging
from pathlib import Path

from pyirqbalance.api.client import ApiClient
from pyirqbalance.api.wiring import build_extras
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.history import HistoryStore
from pyirqbalance.service.config import parse_config


def test_extras_from_config(tmp_path: Path, fake_machine, counter_simulator):
    root, machine = fake_machine("a_desktop4")
    sim = counter_simulator(root, machine)
    token = tmp_path / "token"
    token.write_text("t0k\n")
    token.chmod(0o600)
    sock = tmp_path / "api.sock"
    store = tmp_path / "h.sqlite"
    with HistoryStore(str(store)) as s:
        s.set_override(129, 0x4)            # pinned before a restart
    config = parse_config({
        "history": {"enabled": True, "path": str(store), "resolution_s": 1},
        "api": {"enabled": True, "listen": "127.0.0.1:9199", "unix_socket": str(sock),
                "token_file": str(token)},
        "metrics": {"enabled": True, "per_irq_limit": 4},
    })
    # An ephemeral port instead of 9199 (the file format asks for a real port).
    config = config._replace(api=config.api._replace(listen="127.0.0.1:0"))
    balancer = Balancer(root, BalancerSettings(banned_irqs=(0,)))
    balancer.start()
    extras = build_extras(config, root, balancer, logging.getLogger("test"))
    for service in extras.services:
        service.start()
    try:
        # The pinned IRQ is written again and banned with the configured ones.
        assert Path(root.proc("irq", "129", "smp_affinity")).read_text() == "00000004"
        assert balancer.settings.banned_irqs == (0, 129)
        sim.advance()
        report = balancer.run_pass()
        for listener in extras.listeners:
            listener(report)
        api = ApiClient(f"unix:{sock}", token="t0k")
        health = api.get("/api/v1/health").data
        assert health["cycle"] == 1 and health["overrides"] == {"129": "2"}
        assert health["history"]["enabled"] is True
        assert "pyirqbalance_passes_total 1.0" in api.get("/metrics").data
        assert api.request("DELETE", "/irqsummary/129").status == 200
        assert balancer.settings.banned_irqs == (0,)
    finally:
        for service in reversed(extras.services):
            service.stop()
    with HistoryStore(str(store)) as s:
        assert s.summary(0, 2e9).samples >= 1
        assert s.overrides() == {}
