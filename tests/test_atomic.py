"""neurofx.atomic: temp name, mode, fsync before rename, clean-up on failure, JSON helper."""

import os
import stat

import pytest

import neurofx.atomic as atomic
from neurofx.atomic import (
    atomic_path,
    fsync_dir,
    is_temp_name,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_temp_name_is_unique_in_the_same_folder_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "chart.png"
    names = []
    for _ in range(2):
        with atomic_path(target) as tmp:
            names.append(tmp.name)
            assert tmp.parent == target.parent  # made, and same folder: rename stays atomic
            assert is_temp_name(tmp.name) and tmp.name.endswith("-chart.png")
            assert f"-{os.getpid()}-" in tmp.name
            tmp.write_bytes(b"png")
    assert names[0] != names[1]
    assert listing(target.parent) == ["chart.png"]
    assert not is_temp_name("chart.png") and not is_temp_name("tmp-chart.png")


def test_mode_is_that_of_a_plain_new_file(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    # umask applies as to any new file (mkstemp's 0600 would differ under the usual 022)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_fsync_of_the_data_comes_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    path = write_bytes_atomic(tmp_path / "d.bin", b"\x00\x01")
    ino = path.stat().st_ino  # a rename keeps the inode: the synced file is the final one
    assert events == [("fsync", ino), ("replace", ino)]
    assert path.read_bytes() == b"\x00\x01"


class Boom(Exception):
    pass


def test_failure_in_the_body_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old" and listing(tmp_path) == ["f.txt"]


def test_failure_at_the_rename_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def replace(src, dst):
        raise Boom

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Boom):
        write_text_atomic(target, "new")
    assert target.read_text() == "old" and listing(tmp_path) == ["f.txt"]


def test_a_body_that_writes_nothing_commits_nothing(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "f.txt"):
        pass
    assert listing(tmp_path) == []


def test_text_is_utf8_without_newline_translation(tmp_path):
    p = write_text_atomic(tmp_path / "t.txt", "é\nz\r\n")
    assert p == tmp_path / "t.txt" and p.read_bytes() == b"\xc3\xa9\nz\r\n"


def test_json_sorted_indented_newline_and_nan_refused(tmp_path):
    p = write_json_atomic(tmp_path / "j.json", {"b": 1, "a": [1, 2.5]})
    assert p.read_text() == '{\n  "a": [\n    1,\n    2.5\n  ],\n  "b": 1\n}\n'
    write_json_atomic(p, {"b": 1, "a": 2}, indent=1, sort_keys=False)
    assert p.read_text() == '{\n "b": 1,\n "a": 2\n}\n'
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json_atomic(p, {"x": float("nan")})
    assert p.read_text() == '{\n "b": 1,\n "a": 2\n}\n' and listing(tmp_path) == ["j.json"]
    write_json_atomic(p, [float("inf")], indent=0, allow_nan=True)
    assert p.read_text() == "[\nInfinity\n]\n"


def test_fsync_dir_syncs_the_folder_itself(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(os.fstat(fd)))
    fsync_dir(tmp_path)
    assert len(synced) == 1 and stat.S_ISDIR(synced[0].st_mode)
    assert synced[0].st_ino == tmp_path.stat().st_ino
    fsync_dir(tmp_path / "missing")  # no folder handle: nothing to do, no error
    assert len(synced) == 1
