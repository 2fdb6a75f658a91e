"""One live daemon per test module (starting one costs a few seconds on a busy machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.seed.live import LiveDaemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = LiveDaemon(tmp_path_factory.mktemp("seed"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.close()
    assert not d.errors, d.errors
    assert "Traceback" not in d.log(), d.log()
