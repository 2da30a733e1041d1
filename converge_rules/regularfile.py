"""Reading a file a user names, refusing anything that is not a regular file.

Every reader of a user-named path (rule files, facts files, decision records, traces,
result files, key and token files, the editor's files on disk) goes through here, so a
FIFO cannot block a command until a writer comes and a device such as ``/dev/zero``
cannot grow memory until the process dies. The file is opened without blocking and its
kind is taken from the open file, so a FIFO that replaces a file between a check and the
open is refused too. The refusal is ``NotRegularFile`` (an ``OSError``), whose message is
the kind ("a FIFO"); each caller turns it into its own diagnostic code.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFDIR: "a directory",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


class NotRegularFile(OSError):
    """A path that names something other than a regular file (its kind is the message)."""


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ("a FIFO"), for a file that is not regular."""
    return _KINDS.get(stat.S_IFMT(mode), "something else")


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary mode, or NotRegularFile before anything is read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(file_kind(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file never blocks; reads then behave as usual
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle


def read_regular_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit`` of them when given)."""
    with open_regular_file(path) as handle:
        return handle.read() if limit is None else handle.read(limit)


def read_regular_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the regular file ``path``, line ends as Python's universal newlines
    read them (UnicodeDecodeError when it is not UTF-8)."""
    text = read_regular_file(path).decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def reason(err: OSError) -> str:
    """Why ``err`` stopped a read, in words for a message ("it is a FIFO, not a regular file")."""
    if isinstance(err, NotRegularFile):
        return f"it is {err}, not a regular file"
    return err.strerror or str(err)


__all__ = ["NotRegularFile", "file_kind", "open_regular_file", "read_regular_file", "read_regular_text", "reason"]
