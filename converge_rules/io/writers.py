"""Writing results: atomic files, a directory of CSV files, plain text tables.

``write_atomic(path, data)``
    Write to a temporary file in the same directory, flush and fsync it, then
    ``os.replace`` it over ``path``: readers see the old file or the new one,
    never a half-written one. A ``path`` that exists and is not a regular file
    (a device such as ``/dev/null``, a FIFO, a directory) is refused, never replaced. An existing file keeps its permission bits; a new
    one gets the usual ``0o666 & ~umask``.
``write_csv_dir(out_dir, facts, schema) -> list[str]``
    One ``<relation>.csv`` per relation (header row of column names, values
    rendered so that ``load_fact_paths([out_dir])`` gives the same facts back:
    bools as ``true``/``false``, floats with ``repr``, the fact of a relation
    without columns as a line ``""``). The files are written
    into a fresh hidden directory next to ``out_dir`` and then swapped into
    place, so ``out_dir`` holds either the complete old output or the complete
    new one. An existing ``out_dir`` is swapped with the new one in a single
    atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``), then the old copy is
    removed: a reader, or a kill at any moment, sees the complete old directory
    or the complete new one, never none. Where the exchange is not available
    (other systems, file systems without it) the old directory is renamed away
    and the new one renamed in, so ``out_dir`` is briefly absent, never partial.
    To avoid destroying user data, an existing ``out_dir`` is replaced only if
    it holds nothing but ``.csv`` files.
``format_table(relation, facts, schema) -> str``
    A plain aligned text table (no colours, no trailing newline).

Diagnostics: ``E503`` a relation is not in the schema; ``E507`` output cannot
be written (missing parent directory, permissions, ``out_dir`` is a file or
holds other files, a relation name that is not a safe file name).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import stat
import sys
import unicodedata
from typing import Iterable, Mapping, Sequence

from ..values import dumps_json, int_to_str
from ..diagnostics import ConvergeError, Diagnostic, Span
from ..values import RelationSchema, format_value

__all__ = ["write_atomic", "write_csv_dir", "format_table", "csv_text", "not_regular", "refuse_non_path"]


def _fail(code: str, message: str, path: str, notes: tuple[str, ...] = ()) -> ConvergeError:
    return ConvergeError([Diagnostic(code, message, Span(path, 0, 0), notes=notes)])


def _reason(err: OSError) -> str:
    return (err.strerror or str(err)).lower()


def _fsync_dir(directory: str) -> None:
    """Make a rename durable (best effort; not every platform can open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(directory: str, base: str, suffix: str) -> str:
    return os.path.join(directory, f".{base}.{os.urandom(6).hex()}{suffix}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: str) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a FIFO", "a directory", ...), else None.
    (A FIFO is never opened: opening one blocks until a writer comes.)"""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(info.st_mode) else _kind(info.st_mode)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # the file system cannot exchange: fall back to two renames
    raise OSError(code, os.strerror(code), a)


def _write_new_file(path: str, payload: bytes | Iterable[bytes]) -> None:
    """Create ``path`` (which must not exist) with mode 0o666 & ~umask, write, fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "wb") as handle:
        for chunk in ([payload] if isinstance(payload, bytes) else payload):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())


def refuse_non_path(path: str, kind: str = "file") -> None:
    """E507 for ``-`` (a user meaning standard output would otherwise get a file, or a
    directory, named "-"; ``./-`` still names one) and for an empty path (an unset variable in
    a script: for a directory it would mean the working directory)."""
    if path == "-":
        raise _fail("E507", f"refusing to write a {kind} named '-': this option takes a {kind} path, not standard output",
                    path, (f"write ./- if a {kind} of that name is really wanted",))
    if path == "":
        raise _fail("E507", f"refusing to write to an empty path: this option takes a {kind} path", path)


def write_atomic(path: str, data: str | bytes | Iterable[bytes]) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8; an iterable of byte chunks is
    streamed, so a large output need not be held in memory) atomically. A symbolic link is
    followed, as ``open(path, "w")`` would: its target is replaced and the link kept. A file
    without any write permission bit is refused (E507), as ``open`` would refuse it (for root too)."""
    path = os.fspath(path)
    shown = path  # diagnostics name the path as given
    refuse_non_path(path, "file")
    if os.path.islink(path):
        path = os.path.realpath(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise _fail("E507", f"refusing to write {shown}: it is {_kind(info.st_mode)}, not a regular file", shown,
                    ("give the path of a regular file (it is replaced atomically), or a new one",))
    if info is not None and not info.st_mode & 0o222:  # replacing by rename would bypass the mode, even for root
        raise _fail("E507", f"refusing to write {shown}: the file is read-only (mode {stat.S_IMODE(info.st_mode):o})",
                    shown, ("make it writable first (chmod u+w) if it should be replaced",))
    payload: bytes | Iterable[bytes] = (data.encode("utf-8") if isinstance(data, str)
                                        else bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)
    directory = os.path.dirname(os.path.abspath(path))
    temp: str | None = None
    try:
        for _ in range(100):
            temp = _temp_name(directory, os.path.basename(path), ".tmp")
            try:
                _write_new_file(temp, payload)
                break
            except FileExistsError:
                temp = None
        else:  # pragma: no cover - 100 random collisions
            raise FileExistsError("cannot create a temporary file")
        try:
            os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        os.replace(temp, path)
        temp = None
        _fsync_dir(directory)
    except OSError as err:
        raise _fail("E507", f"cannot write {shown}: {_reason(err)}", shown) from None
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


# ---------------------------------------------------------------- CSV

def _csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return int_to_str(value)
    return str(value)


def csv_text(relation: str, facts: Sequence[tuple], schema: Mapping[str, RelationSchema]) -> str:
    """The CSV text ``write_csv_dir`` writes for one relation (header row, ``\\n`` line ends)."""
    rel = _relation(relation, schema)
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    # With "\n" line ends the csv module does not quote a lone "\r", which
    # would split the record on reading; quote every field of such rows.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    plain.writerow([c.name for c in rel.columns])
    for fact in facts:
        # A fact without values would be a blank line, which readers skip: write it
        # as one empty quoted field (a line ""), read back as the fact () of such a relation.
        cells = [_csv_cell(v) for v in fact] if fact else [""]
        (quoted if any("\r" in cell for cell in cells) else plain).writerow(cells)
    return buffer.getvalue()


def _relation(relation: str, schema: Mapping[str, RelationSchema], path: str = "<output>") -> RelationSchema:
    rel = schema.get(relation)
    if rel is None:
        raise _fail("E503", f'unknown relation "{relation}"', path)
    return rel


def _safe_file_stem(name: str) -> bool:
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name \
        and "\x00" not in name and os.sep not in name and (os.altsep is None or os.altsep not in name)


def write_csv_dir(out_dir: str, facts: Mapping[str, Sequence[tuple]], schema: Mapping[str, RelationSchema]) -> list[str]:
    """Write ``<relation>.csv`` per relation into ``out_dir``, replacing it as a whole."""
    out_dir = os.fspath(out_dir)
    refuse_non_path(out_dir, "directory")
    target = os.path.abspath(out_dir)
    parent, name = os.path.split(target)
    if not name:
        raise _fail("E507", f"cannot write CSV output to {out_dir}: not a directory that can be replaced", out_dir)
    texts: dict[str, str] = {}
    for relation, rel_facts in facts.items():
        if not _safe_file_stem(relation):
            raise _fail("E507", f"relation name {relation!r} cannot be used as a file name", out_dir)
        texts[relation] = csv_text(relation, rel_facts, schema)

    mode = None
    if os.path.lexists(target):
        if not os.path.isdir(target) or os.path.islink(target):
            raise _fail("E507", f"cannot write CSV output to {out_dir}: it exists and is not a plain directory",
                        out_dir)
        try:
            others = sorted(e.name for e in os.scandir(target)
                            if not (e.name.endswith(".csv") and e.is_file(follow_symlinks=False)))
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError as err:
            raise _fail("E507", f"cannot write CSV output to {out_dir}: {_reason(err)}", out_dir) from None
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise _fail("E507", f"refusing to replace {out_dir}: it holds files that are not CSV output ({shown})",
                        out_dir, ("choose an empty or new directory",))

    temp: str | None = None
    backup: str | None = None
    try:
        for _ in range(100):
            temp = _temp_name(parent, name, ".tmp")
            try:
                os.mkdir(temp, 0o777)
                break
            except FileExistsError:
                temp = None
        else:  # pragma: no cover
            raise FileExistsError("cannot create a temporary directory")
        if mode is not None:
            os.chmod(temp, mode)
        for relation, text in texts.items():
            _write_new_file(os.path.join(temp, f"{relation}.csv"), text.encode("utf-8"))
        _fsync_dir(temp)
        if os.path.lexists(target):
            if _exchange(temp, target):  # target is now the new output, temp the old one
                backup, temp = temp, None
            else:
                backup = _temp_name(parent, name, ".old")
                os.rename(target, backup)
                try:
                    os.rename(temp, target)
                except OSError:
                    os.rename(backup, target)
                    backup = None
                    raise
        else:
            os.rename(temp, target)
        temp = None
        _fsync_dir(parent)
    except OSError as err:
        raise _fail("E507", f"cannot write CSV output to {out_dir}: {_reason(err)}", out_dir) from None
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    return [os.path.join(out_dir, f"{relation}.csv") for relation in texts]


# ---------------------------------------------------------------- text tables

def _table_cell(value: object) -> str:
    if isinstance(value, str):
        # Bare unless that would be ambiguous: a cell that starts with a quote is JSON,
        # so a value starting with one is quoted too ('""' is not the empty string).
        if value and value == value.strip() and value.isprintable() and not value.startswith('"'):
            return value
        return dumps_json(value, ensure_ascii=False)
    if isinstance(value, (bool, int, float)):
        return format_value(value)
    return str(value)


def _width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def format_table(relation: str, facts: Sequence[tuple], schema: Mapping[str, RelationSchema]) -> str:
    """Facts as an aligned plain-text table under a header of column names.

    Numbers are right-aligned; strings are shown bare unless they are empty,
    start with a quote, have surrounding spaces or unprintable characters (then
    JSON-quoted, so every cell reads back as exactly one value).
    No trailing newline.
    """
    rel = _relation(relation, schema)
    names = [c.name for c in rel.columns]
    if not names:
        return "(no columns)\n" + ("()" if facts else "(no facts)")
    right = [c.type in ("int", "float") for c in rel.columns]
    rows = [[_table_cell(v) for v in fact] for fact in facts]
    arity = max([len(names)] + [len(r) for r in rows])
    names += [""] * (arity - len(names))
    right += [False] * (arity - len(right))
    widths = [_width(n) for n in names]
    for row in rows:
        for k, cell in enumerate(row):
            widths[k] = max(widths[k], _width(cell))
    lines = ["  ".join(_pad(n, w, r) for n, w, r in zip(names, widths, right)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(_pad(c, w, r) for c, w, r in zip(row, widths, right)).rstrip())
    if not rows:
        lines.append("(no facts)")
    return "\n".join(lines)
