"""A content-addressed cache of compiled programs, like Python's .pyc files.

A warm ``converge run`` skips parsing, checking and graph analysis (and so
the imports of Lark and networkx). An entry is keyed by the SHA-256 of the
converge version, the grammar and the root files' paths and contents, and it
records the SHA-256 of every file the program read (imports included); it is
used only when all of them still match. Set CONVERGE_NO_CACHE=1 to disable,
CONVERGE_CACHE_DIR to move it. A cache that cannot be read or written is
ignored: it never changes a result. It keeps at most MAX_ENTRIES programs: when
a new entry makes more, the least recently used are removed.

Every cache (this one and Lark's parser tables) lives in a per-user directory,
``$XDG_CACHE_HOME/converge-rules`` or ``~/.cache/converge-rules``, created with
mode 0700 and used only when this user owns it and nobody else can write to
it; a cache file is unpickled only when it is a regular file this user owns
that nobody else can write (anything else is removed or ignored).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from ..usercache import cache_dir, trusted_file

FORMAT = 5  # 3: a cached diagnostic carries the line it quotes (Diagnostic.quote); 4: a root file
# that another root imports is named as the root is (entries of 3 name it as the import does);
# 5: a test keeps the spans of its `given "FILE"` clauses (TestDef.given_spans)
MAX_ENTRIES = 1000  # programs kept; past it the least recently used tenth goes (see _prune)


def _sha(path: str) -> str | None:
    """The SHA-256 of a rule file; None when it cannot be read, or is no regular file (a FIFO
    would block here, /dev/zero never end: compiling it reports E002)."""
    from ..regularfile import read_regular_file

    try:
        return hashlib.sha256(read_regular_file(path)).hexdigest()
    except OSError:
        return None


def key(roots: list[str]) -> str | None:
    from .. import __version__
    from ..syntax.parser import grammar_path

    # Spans keep paths as given, relative to the working directory: both are part of the key.
    # (a path that is not UTF-8 holds lone surrogates: hashed as the bytes it names)
    h = hashlib.sha256(f"{FORMAT}:{__version__}:{os.getcwd()}:{sorted(roots)}".encode("utf-8", "surrogateescape"))
    for p in [str(grammar_path())] + sorted(roots, key=os.path.abspath):
        digest = _sha(p)
        if digest is None:
            return None
        h.update(os.fsencode(os.path.abspath(p)) + b"\0" + digest.encode() + b"\0")
    return h.hexdigest()


def key_texts(roots: list[str], texts: dict[str, str]) -> str:
    """The key of a program compiled from texts alone (a decision record): every text is in it."""
    from .. import __version__
    from ..syntax.parser import grammar_path

    h = hashlib.sha256(f"{FORMAT}:texts:{__version__}:{sorted(roots)}".encode())
    h.update((_sha(str(grammar_path())) or "").encode())
    for path in sorted(texts):
        h.update(path.encode("utf-8", "surrogatepass") + b"\0" +
                 hashlib.sha256(texts[path].encode("utf-8", "surrogatepass")).hexdigest().encode() + b"\0")
    return h.hexdigest()


def load_texts(roots: list[str], texts: dict[str, str]) -> tuple[Any, dict[str, str]] | None:
    """The program compiled from ``texts`` (as the caller gave them) and the texts of the
    installed standard modules it added (they lacked), when those modules are unchanged."""
    directory = cache_dir()
    if directory is None:
        return None
    path = directory / f"{key_texts(roots, texts)}.pickle"
    if not path.exists() or not trusted_file(path):
        return None
    try:
        with open(path, "rb") as handle:
            deps, (payload, added) = pickle.load(handle)
    except Exception:
        return None
    if not isinstance(deps, list) or not isinstance(added, dict) or any(_sha(p) != digest for p, digest in deps):
        return None  # an installed standard module changed since: compile again
    _used(path)
    return payload, added


def store_texts(roots: list[str], texts: dict[str, str], payload: Any, added: dict[str, str]) -> None:
    """Keep a program compiled from ``texts`` under their key; ``added``: the installed standard
    modules it read from disk (path -> text), kept with their SHA-256 so a change refuses the entry."""
    directory = cache_dir()
    if directory is None:
        return
    tmp = None
    try:
        deps = [(p, _sha(p)) for p in sorted(added)]
        if any(digest is None for _, digest in deps):
            return
        directory.mkdir(parents=True, exist_ok=True)
        import tempfile  # only a cold run writes an entry: a warm start skips the import

        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump((deps, (payload, dict(added))), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, directory / f"{key_texts(roots, texts)}.pickle")
        _prune(directory)
    except Exception:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except Exception:
                pass


def load(roots: list[str]) -> Any | None:
    directory = cache_dir()
    k = key(roots) if directory is not None else None
    if k is None or directory is None:
        return None
    path = directory / f"{k}.pickle"
    if not path.exists() or not trusted_file(path):
        return None
    try:
        with open(path, "rb") as handle:
            deps, payload = pickle.load(handle)
    except Exception:
        return None
    if any(_sha(dep) != digest for dep, digest in deps):
        return None
    _used(path)
    return payload


def store(roots: list[str], deps: list[str], payload: Any) -> None:
    directory = cache_dir()
    k = key(roots) if directory is not None else None
    if k is None or directory is None:
        return
    try:
        entries = [(os.path.abspath(p), _sha(p)) for p in deps]
        import tempfile  # only a cold run writes an entry: a warm start skips the import

        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump((entries, payload), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, directory / f"{k}.pickle")
        _prune(directory)
    except Exception:
        try:
            os.unlink(tmp)  # type: ignore[possibly-undefined]
        except Exception:
            pass


def _used(path: Path) -> None:
    """Mark an entry as just used (its modification time), so pruning keeps what is in use."""
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(directory: Path) -> None:
    """Bound the cache (a cold run just wrote an entry): past MAX_ENTRIES programs, remove the least
    recently used down to nine tenths of it, and temporary files a killed writer left over an hour ago.
    Every rule text a long-lived process or a record replay compiles is an entry; without this
    the directory would only grow."""
    import time

    programs: list[tuple[int, str]] = []
    stale: list[str] = []
    cutoff = time.time_ns() - 3600 * 10**9
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.name.endswith(".pickle"):
                    programs.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
                elif entry.name.endswith(".tmp") and entry.stat(follow_symlinks=False).st_mtime_ns < cutoff:
                    stale.append(entry.name)
    except OSError:
        return
    doomed = stale
    if len(programs) > MAX_ENTRIES:
        programs.sort()
        doomed = doomed + [name for _, name in programs[:len(programs) - MAX_ENTRIES * 9 // 10]]
    for name in doomed:
        try:
            os.unlink(directory / name)
        except OSError:
            pass
