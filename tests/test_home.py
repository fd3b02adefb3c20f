"""meshbot's state folder: where it is, how it is created, and which folders are refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.home import HomeError, meshbot_home


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No MESHBOT_HOME or XDG_DATA_HOME, and HOME is a fresh folder."""
    monkeypatch.delenv("MESHBOT_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return monkeypatch


def test_meshbot_home_wins(env, tmp_path):
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    env.setenv("MESHBOT_HOME", str(tmp_path / "state"))
    assert meshbot_home() == tmp_path / "state"
    assert mode(tmp_path / "state") == 0o700


def test_xdg_data_home(env, tmp_path):
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert meshbot_home() == tmp_path / "xdg" / "meshbot"


def test_default_is_under_the_users_home(env, tmp_path):
    assert meshbot_home() == tmp_path / "user" / ".local" / "share" / "meshbot"
    assert mode(tmp_path / "user" / ".local" / "share" / "meshbot") == 0o700


def test_empty_variables_are_unset_and_relative_xdg_is_ignored(env, tmp_path):
    env.setenv("MESHBOT_HOME", "")
    env.setenv("XDG_DATA_HOME", "relative/data")
    env.chdir(tmp_path)
    assert meshbot_home() == tmp_path / "user" / ".local" / "share" / "meshbot"
    assert not (tmp_path / "relative").exists()


def test_relative_and_tilde_meshbot_home_become_absolute(env, tmp_path):
    env.chdir(tmp_path)
    env.setenv("MESHBOT_HOME", "state")
    assert meshbot_home() == tmp_path / "state"
    env.setenv("MESHBOT_HOME", "~/meshbot")
    assert meshbot_home() == tmp_path / "user" / "meshbot"


def test_created_private_whatever_the_umask(env, tmp_path):
    env.setenv("MESHBOT_HOME", str(tmp_path / "a" / "b" / "state"))
    previous = os.umask(0)
    try:
        path = meshbot_home()
    finally:
        os.umask(previous)
    assert path.is_dir() and mode(path) == 0o700


def test_existing_private_folder_is_kept_as_it_is(env, tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    (folder / "data").write_text("kept")
    env.setenv("MESHBOT_HOME", str(folder))
    assert meshbot_home() == folder
    assert mode(folder) == 0o755 and (folder / "data").read_text() == "kept"
    assert meshbot_home() == folder  # a second call finds it fine


def test_refuses_a_file(env, tmp_path):
    (tmp_path / "state").write_text("")
    env.setenv("MESHBOT_HOME", str(tmp_path / "state"))
    with pytest.raises(HomeError, match=f"{tmp_path / 'state'} exists and is not a directory"):
        meshbot_home()


@pytest.mark.parametrize("bits", [0o770, 0o702, 0o777])
def test_refuses_a_folder_writable_by_others(env, tmp_path, bits):
    folder = tmp_path / "state"
    folder.mkdir()
    os.chmod(folder, bits)
    env.setenv("MESHBOT_HOME", str(folder))
    with pytest.raises(HomeError, match=f"{folder} is writable by group or others \\(mode 0{bits:o}\\)"):
        meshbot_home()


def test_refuses_a_folder_of_another_user(env, tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    env.setenv("MESHBOT_HOME", str(folder))
    env.setattr(os, "geteuid", lambda: os.stat(folder).st_uid + 1)
    with pytest.raises(HomeError, match=f"{folder} is owned by user id"):
        meshbot_home()


def test_symlinks_are_judged_by_the_folder_they_lead_to(env, tmp_path):
    private, shared = tmp_path / "private", tmp_path / "shared"
    private.mkdir(mode=0o700)
    shared.mkdir()
    os.chmod(shared, 0o777)
    (tmp_path / "to-private").symlink_to(private)
    (tmp_path / "to-shared").symlink_to(shared)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    env.setenv("MESHBOT_HOME", str(tmp_path / "to-private"))
    assert meshbot_home() == tmp_path / "to-private"
    env.setenv("MESHBOT_HOME", str(tmp_path / "to-shared"))
    with pytest.raises(HomeError, match="writable by group or others"):
        meshbot_home()
    env.setenv("MESHBOT_HOME", str(tmp_path / "dangling"))
    with pytest.raises(HomeError, match=f"{tmp_path / 'dangling'} cannot be read"):
        meshbot_home()
    assert not (tmp_path / "nowhere").exists()


def test_cannot_create(env, tmp_path):
    (tmp_path / "file").write_text("")
    env.setenv("MESHBOT_HOME", str(tmp_path / "file" / "state"))
    with pytest.raises(HomeError, match=f"cannot create meshbot's state folder {tmp_path / 'file' / 'state'}"):
        meshbot_home()
