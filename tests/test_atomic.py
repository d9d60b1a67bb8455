"""All-or-nothing writes: the one writer every output goes through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alpharl_trainer.atomic import atomic_dir, atomic_file
from alpharl_trainer.errors import AlphaRLError


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-") and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").is_file()  # untouched until the write completes
    assert [p.name for p in target.iterdir()] == ["new.txt"]  # never a mix of old and new
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "partial.txt").write_text("x")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "summary.json"
    with atomic_file(target) as tmp:
        tmp.write_text("1")
    assert target.read_text() == "1"
    with pytest.raises(ValueError), atomic_file(target) as tmp:
        tmp.write_text("2")
        raise ValueError("killed half way")
    assert target.read_text() == "1" and sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_a_dead_writers_temporary_is_removed_and_reported_a_live_ones_kept(tmp_path, capsys):
    target = tmp_path / "out"
    dead = tmp_path / ".out.tmp-999999999-abcd1234"  # no such process
    live = tmp_path / f".out.tmp-{os.getpid()}-abcd1234"
    dead.mkdir()
    live.mkdir()
    with atomic_file(target) as tmp:
        tmp.write_text("x")
    assert not dead.exists() and live.exists()
    assert f"removed {dead}: a partial output left by an interrupted run" in capsys.readouterr().err


def test_names_and_places_that_cannot_be_written_are_clear_errors(tmp_path):
    with pytest.raises(AlphaRLError, match="255-byte file-name limit"), atomic_dir(tmp_path / ("x" * 256)):
        pass
    (tmp_path / "a-file").write_text("")
    with pytest.raises(AlphaRLError, match="cannot write the output .*a-file"):
        with atomic_file(tmp_path / "a-file" / "out.json"):
            pass


def test_what_is_renamed_into_place_is_on_disk_first(tmp_path, monkeypatch):
    """Without an fsync a machine lost right after the rename can leave the new name pointing at an empty or
    cut-short file (a checkpoint's alpharl/state.json then blocked every requeue): every file of the
    temporary is flushed before the rename, and the folder holding the new name after it."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(real):
        def wrapped(src, dst):
            events.append(("rename", str(dst)))
            real(src, dst)

        return wrapped

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", rename(real_replace))
    monkeypatch.setattr(os, "rename", rename(real_rename))
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "a.json").write_text("a")
        (tmp / "sub" / "b.bin").write_bytes(b"b")
    renamed = events.index(("rename", str(tmp_path / "out")))
    flushed = {Path(path).relative_to(tmp) for kind, path in events[:renamed] if kind == "fsync"}
    assert {Path("a.json"), Path("sub/b.bin")} <= flushed
    assert ("fsync", str(tmp_path)) in events[renamed:]
    events.clear()
    with atomic_file(tmp_path / "state.json") as tmp:
        tmp.write_text("{}")
    assert events == [("fsync", str(tmp)), ("rename", str(tmp_path / "state.json")), ("fsync", str(tmp_path))]
