"""meshbot's private state folder (MESHBOT_HOME): the embedded Redis database now, the webhook secret later."""

from __future__ import annotations

import os
import stat
from pathlib import Path

HOME_ENVIRONMENT_VARIABLE = "MESHBOT_HOME"
HOME_MODE = 0o700


class HomeError(Exception):
    """Raised when meshbot's state folder cannot be created or is not safe to use."""


def default_home() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/meshbot, else ~/.local/share/meshbot."""
    xdg_data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG specification says a relative XDG_DATA_HOME is invalid and must be ignored.
    if xdg_data_home and os.path.isabs(xdg_data_home):
        return Path(xdg_data_home) / "meshbot"
    try:
        return Path.home() / ".local" / "share" / "meshbot"
    except RuntimeError as error:
        raise HomeError(f"cannot find your home folder ({error}); set {HOME_ENVIRONMENT_VARIABLE}") from error


def home_path() -> Path:
    """Where meshbot keeps its state: MESHBOT_HOME if set, else default_home(); nothing is created or checked."""
    configured = os.environ.get(HOME_ENVIRONMENT_VARIABLE, "")
    if configured:
        return Path(configured).expanduser().absolute()
    return default_home()


def meshbot_home() -> Path:
    """meshbot's state folder, created with mode 0700 if missing; HomeError unless it is private to this user."""
    path = home_path()
    if not os.path.lexists(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir(mode=HOME_MODE)
                os.chmod(path, HOME_MODE)  # mkdir's mode is filtered through the umask
            except FileExistsError:
                pass  # another process created it meanwhile: check it below like any existing folder
        except OSError as error:
            raise HomeError(f"cannot create meshbot's state folder {path}: {error.strerror or error}") from error
    check_private_folder(path)
    return path


def check_private_folder(path: Path) -> None:
    """HomeError unless path is a folder owned by the current user and writable by nobody else."""
    try:
        status = os.stat(path)  # follows a symlink: what matters is the folder it leads to
    except OSError as error:
        raise HomeError(f"meshbot's state folder {path} cannot be read: {error.strerror or error}") from error
    if not stat.S_ISDIR(status.st_mode):
        raise HomeError(
            f"meshbot's state folder {path} exists and is not a directory; "
            f"remove it or set {HOME_ENVIRONMENT_VARIABLE} to another path"
        )
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        raise HomeError(
            f"meshbot's state folder {path} is owned by user id {status.st_uid}, not by you (user id {os.geteuid()}); "
            f"set {HOME_ENVIRONMENT_VARIABLE} to a folder of your own"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(status.st_mode)
        raise HomeError(
            f"meshbot's state folder {path} is writable by group or others (mode {mode:04o}); "
            f"it will hold secrets: run `chmod 700 {path}`"
        )
