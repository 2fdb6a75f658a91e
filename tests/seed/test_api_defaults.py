"""Turning the API on turns history and metrics on unless the configuration says no."""

from __future__ import annotations

import logging

import pytest

from pyirqbalance.api.server import ApiService
from pyirqbalance.api.wiring import build_extras
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.history.recorder import HistoryRecorder
from pyirqbalance.service.config import ConfigError, parse_config


def extras_for(fake_machine, sections: dict):
    root, _ = fake_machine("a_desktop4")
    balancer = Balancer(root)
    balancer.start()
    return root, build_extras(parse_config(sections), root, balancer, logging.getLogger("t"))


def _api(extras) -> ApiService:
    return next(s for s in extras.services if isinstance(s, ApiService))


def test_api_alone_brings_history_and_metrics(fake_machine):
    root, extras = extras_for(fake_machine, {"api": {"enabled": True}})
    assert any(isinstance(s, HistoryRecorder) for s in extras.services)
    ctx = _api(extras).ctx
    assert ctx.metrics is not None and ctx.local_root_writes is True
    # Under --sysroot the default store lies inside the tree, never in the host's /var/lib.
    assert ctx.history is not None
    assert ctx.history.path == f"{root.base}/var/lib/pyirqbalance/history.sqlite"


def test_configured_off_stays_off(fake_machine):
    _, extras = extras_for(fake_machine, {
        "api": {"enabled": True, "local_root_writes": False},
        "history": {"enabled": False}, "metrics": {"enabled": False}})
    assert not any(isinstance(s, HistoryRecorder) for s in extras.services)
    ctx = _api(extras).ctx
    assert ctx.history is None and ctx.metrics is None and ctx.local_root_writes is False


def test_without_the_api_nothing_is_added(fake_machine):
    _, extras = extras_for(fake_machine, {})
    assert extras.services == [] and extras.overrides is None


def test_local_root_writes_is_a_boolean():
    with pytest.raises(ConfigError, match=r"api\.local_root_writes"):
        parse_config({"api": {"local_root_writes": "yes"}})
    assert parse_config({"history": {"enabled": None}}).history.enabled is None
