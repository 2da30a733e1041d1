"""The per-user cache directory, shared by every cache converge keeps.

``$CONVERGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/converge-rules``, else
``~/.cache/converge-rules``; created with mode 0700 and used only when this
user owns it (it is then made 0700). A cache file is read (unpickled) only when it
is a regular file this user owns that neither group nor others may write, never
a symlink; anything else there is removed (or, if that fails, ignored). A predictable name in the shared temporary directory (what
Lark does by default) would let another local user plant a pickle that runs
code in every converge process.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path


def cache_dir() -> Path | None:
    """This user's cache directory, created with mode 0700; None when caching is off or the
    directory is not safe (owned by someone else, or writable by group or others)."""
    if os.environ.get("CONVERGE_NO_CACHE"):
        return None
    base = os.environ.get("CONVERGE_CACHE_DIR")
    if base:
        directory = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = Path(xdg) / "converge-rules"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(info.st_mode) or not _owned(info):
        return None
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(directory, 0o700)  # ours: nobody else may list or write it
        except OSError:
            return None
    return directory


def _owned(info: os.stat_result) -> bool:
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    return uid is None or info.st_uid == uid


def trusted_file(path: Path) -> bool:
    """A regular file this user wrote (owner and mode checked, symlinks refused): only
    such a file is ever unpickled. An existing untrusted file is removed if possible."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True  # nothing there: the caller may create it
    except OSError:
        return False
    if stat.S_ISREG(info.st_mode) and _owned(info) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return True
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def seal(path: str | bool) -> None:
    """Make a cache file this process just wrote private (0600), whatever the umask was."""
    if isinstance(path, str):
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and _owned(info) and stat.S_IMODE(info.st_mode) != 0o600:
                os.chmod(path, 0o600)
        except OSError:
            pass


def parser_cache(name: str) -> str | bool:
    """A path for Lark's parser cache in this user's cache directory (Lark would use a
    predictable name in the shared temporary directory), or False for no cache."""
    directory = cache_dir()
    if directory is None:
        return False
    path = directory / f"lark-{name}-{sys.version_info[0]}.{sys.version_info[1]}.cache"
    return str(path) if trusted_file(path) else False
