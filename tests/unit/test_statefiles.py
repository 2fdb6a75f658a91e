"""service/statefiles: set-aside copies of a damaged state file are kept, the newest few."""

from __future__ import annotations

import os
from pathlib import Path

from pyirqbalance.service import statefiles
from pyirqbalance.service.statefiles import KEEP_SET_ASIDE, prune_set_aside, set_aside


def test_set_aside_keeps_only_the_newest_copies(tmp_path, monkeypatch):
    path = tmp_path / "original-affinity.json"
    other = tmp_path / "other.json.corrupt-20200101T000000Z"   # another file's copy
    other.write_text("x")
    keep_dir = tmp_path / "original-affinity.json.corrupt-20000101T000000Z"
    keep_dir.mkdir()    # a directory set aside is never deleted
    stamps = iter(f"2026120{d}T1{h}0000Z" for d in range(1, 8) for h in range(2))
    monkeypatch.setattr(statefiles, "utc_stamp", lambda: next(stamps))
    made = []
    for i, kind in enumerate(["corrupt", "old-format", "other-boot"] * 3):
        path.write_text(str(i))
        made.append(set_aside(str(path), kind))
    assert not path.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    # The newest KEEP_SET_ASIDE copies, whatever kind, with their content.
    assert sorted(os.path.basename(m) for m in made[-KEEP_SET_ASIDE:]) == sorted(
        n for n in left if n.startswith("original-affinity.json.") and n != keep_dir.name)
    for i, m in enumerate(made[-KEEP_SET_ASIDE:], start=9 - KEEP_SET_ASIDE):
        assert Path(m).read_text() == str(i)
    assert other.exists() and keep_dir.is_dir()


def test_copies_of_the_same_second_are_ordered_by_their_number(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    monkeypatch.setattr(statefiles, "utc_stamp", lambda: "20261207T120000Z")
    for i in range(12):
        path.write_text(str(i))
        set_aside(str(path), "corrupt")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"f.json.corrupt-20261207T120000Z.{n}" for n in range(8, 13))
    assert prune_set_aside(str(path), keep=1) == [
        str(tmp_path / f"f.json.corrupt-20261207T120000Z.{n}") for n in (11, 10, 9, 8)]
