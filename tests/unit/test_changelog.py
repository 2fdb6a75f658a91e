"""One version everywhere: the package, pyproject.toml, CHANGELOG.md and debian/changelog."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import pyirqbalance

ROOT = Path(__file__).resolve().parents[2]
#: Keep a Changelog's section names.
SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _changelog() -> list[tuple[str, date]]:
    """(version, date) of each release heading of CHANGELOG.md, newest first."""
    text = (ROOT / "CHANGELOG.md").read_text()
    heads = re.findall(r"^## \[(.+?)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    return [(v, date.fromisoformat(d)) for v, d in heads if v != "Unreleased"]


def _debian() -> list[str]:
    text = (ROOT / "debian" / "changelog").read_text()
    return re.findall(r"^pyirqbalance \(([^)]+)\)", text, re.M)


def test_the_newest_versions_agree():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    newest = _changelog()[0][0]
    debian = _debian()[0].split("-")[0]
    assert pyirqbalance.__version__ == pyproject == newest == debian


def test_changelog_follows_keep_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = _changelog()
    assert releases, "no release heading"
    assert [d for _, d in releases] == sorted((d for _, d in releases), reverse=True)
    for heading in re.findall(r"^### (.+)$", text, re.M):
        assert heading in SECTIONS, heading
    # every Debian upload is a release of the changelog
    assert {v.split("-")[0] for v in _debian()} <= {v for v, _ in releases}
