"""SHA-256 of the job's input files, recorded in verifiable results.

``content_sha256(path)`` hashes a file's bytes; for a facts directory it hashes the
names and contents of the files the loader reads there (not hidden, a supported
extension), in name order. ``converge verify`` compares these before it reads a
job file, so a crafted result cannot make it read (and quote) files it was not
written from.
"""

from __future__ import annotations

import hashlib
import os

from .facts import facts_directory_files
from ..regularfile import open_regular_file


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open_regular_file(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(path: str) -> str | None:
    """The SHA-256 of a file, or of a facts directory's files; None when it cannot be read."""
    try:
        if not os.path.isdir(path):
            return _file_sha(path)
        h = hashlib.sha256(b"converge-facts-directory\0")
        for name in facts_directory_files(path):
            h.update(name.encode("utf-8", "surrogateescape") + b"\0" + _file_sha(os.path.join(path, name)).encode() + b"\0")
        return h.hexdigest()
    except (OSError, ValueError):
        return None


def source_sha256(source: object) -> str | None:
    """The SHA-256 of a job's facts source: of the text itself for facts given as text
    (``io.FactText``, standard input), else ``content_sha256`` of the file or directory;
    None when it cannot be read."""
    text = getattr(source, "text", None)
    if isinstance(text, str):
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        return content_sha256(os.fspath(source))  # type: ignore[arg-type]
    except TypeError:
        return None


__all__ = ["content_sha256", "source_sha256"]
