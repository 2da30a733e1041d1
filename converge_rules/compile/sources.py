"""Where rule texts come from: one small interface, three implementations.

The frontend (frontend.py) loads a root file and follows its imports; what it
reads, and what an ``import`` names, is asked of a ``RuleSources`` object, in
the manner of OPA's storage interface, so the frontend has one code path
whatever holds the texts:

- ``DiskSources``: rule files on disk; an import stays inside its project
  directory; ``std.NAME`` is this install's standard module.
- ``OverlaySources``: the disk, except that some files' texts are replaced
  (an editor's unsaved buffers, by real path); imports still resolve on disk.
- ``SealedSources``: the given texts only (a decision record, ``load_sources``);
  the disk is never read for a rule file, except the installed standard
  module that the texts lack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..syntax.parser import read_rule_file


def stdlib_dir() -> Path:
    """The directory holding this install's ``std/`` rule modules (in the package, or
    beside it in a source checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "stdlib_rules", here.parent / "stdlib_rules"):
        if (candidate / "std").is_dir():
            return candidate
    return here / "stdlib_rules"


def rule_files_under(directory: str) -> list[str]:
    """The ``*.cvg`` rule files under ``directory``, recursively, sorted: what ``converge
    check``, ``test`` and ``fmt`` search a directory for.

    Hidden directories and files (``.git``, an editor's ``.#rules.cvg`` lock) and
    ``__pycache__`` are skipped, and so is anything that is not a regular file: a FIFO
    would block the reader forever, a device never ends. A link is followed; a dangling
    one is kept, so reading it reports that the file is missing (E001)."""
    import stat

    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in files:
            if not name.endswith(".cvg") or name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                mode = os.stat(path).st_mode
            except (OSError, ValueError):
                found.append(path)
                continue
            if stat.S_ISREG(mode):
                found.append(path)
    return sorted(found)


def spelling_order(path: str) -> tuple[str, int, str]:
    """The order in which spellings of one file compete to name it: the one whose absolute
    path sorts first, then the shorter text (``a.cvg`` before ``./a.cvg``), so the name
    never depends on the order of the command line."""
    return (os.path.abspath(path), len(path), path)


def collect_rule_files(paths: Sequence[str]) -> list[str]:
    """The rule files named by ``paths``: files as given, directories searched for ``*.cvg``
    (``rule_files_under``), normalised, each file once (under the spelling that comes first
    in ``spelling_order``), sorted; what ``converge check`` and ``converge_rules.check`` take. A directory without
    rule files is a ValueError."""
    found: dict[str, str] = {}
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            inside = rule_files_under(path)
            if not inside:
                raise ValueError(f"no *.cvg rule files in directory {path!r}")
        else:
            inside = [path]
        for file in inside:
            shown = os.path.normpath(file)
            real = os.path.realpath(shown)
            if real not in found or spelling_order(shown) < spelling_order(found[real]):
                found[real] = shown
    return sorted(found.values())


@dataclass(frozen=True)
class Problem:
    """Why an import cannot be followed: a diagnostic but for its place, which the
    frontend supplies (the span of the import)."""

    code: str
    message: str
    notes: tuple[str, ...] = ()


class RuleSources:
    """What the frontend asks of wherever rule texts are kept.

    Paths are the names a file is shown and recorded under; ``real`` gives the
    identity of a file, under which it is parsed once and import cycles are found."""

    def read(self, path: str) -> str:
        """The text of a file that ``resolve_import``/``std_module`` named (or a root);
        raises ConvergeError when it cannot be read."""
        raise NotImplementedError

    def real(self, path: str) -> str:
        """The identity of the file ``path`` names."""
        raise NotImplementedError

    def resolve_import(self, importer: str, written: str, project: str) -> str | Problem:
        """The file that ``import "written"`` in ``importer`` names, or why there is none;
        ``project`` is the directory the importing program may not leave."""
        raise NotImplementedError

    def std_module(self, name: str) -> str | Problem:
        """The file of standard module ``std.name``, or why there is none. Its own imports
        stay in its directory."""
        raise NotImplementedError

    def given_file(self, test_file: str, written: str) -> str:
        """The facts path that ``given "written"`` in a test of ``test_file`` names: relative
        to that file's directory."""
        return os.path.normpath(os.path.join(os.path.dirname(test_file), written))


class DiskSources(RuleSources):
    """Rule files on disk, by real path; imports are relative to the importing file."""

    def read(self, path: str) -> str:
        return read_rule_file(path)

    def real(self, path: str) -> str:
        return os.path.realpath(path)

    def resolve_import(self, importer: str, written: str, project: str) -> str | Problem:
        if "\x00" in written or not written.strip():
            return Problem("E110", f"invalid import path {written!r}",
                           ("an import path names a .cvg file relative to the importing file",))
        try:
            base = os.path.dirname(os.path.realpath(importer))
            target = os.path.realpath(os.path.join(base, written))
            outside = os.path.isabs(written) or os.path.commonpath([project, target]) != project
        except (OSError, ValueError) as err:  # a name the file system refuses (too long, ...)
            return Problem("E110", f"invalid import path {written[:80]!r}: {err}")
        if outside:
            return Problem("E112", f"import {written!r} leaves the project directory {project}")
        if not os.path.exists(target):  # one that is there but no regular file is E002 when read
            return Problem("E110", f"imported file not found: {written!r}",
                           (f"paths are relative to the importing file: looked for {os.path.relpath(target)}",))
        shown = os.path.relpath(target)
        return target if shown.startswith("..") else shown

    def given_file(self, test_file: str, written: str) -> str:
        """Relative to the directory of the file ``test_file`` is, as its imports are: for a
        rule file reached through a symbolic link, the directory of the file it links to.
        Otherwise the path keeps the spelling of ``test_file`` (``rules/facts.json``)."""
        base = os.path.dirname(test_file)
        try:
            real_base = os.path.dirname(os.path.realpath(test_file))
            if os.path.realpath(base or ".") != real_base:
                base = real_base
        except (OSError, ValueError):  # a name the file system refuses: loading the facts says so
            pass
        return os.path.normpath(os.path.join(base, written))

    def std_module(self, name: str) -> str | Problem:
        target = stdlib_dir() / "std" / f"{name}.cvg"
        try:
            found = target.is_file()
        except (OSError, ValueError):  # a name the file system refuses (too long)
            found = False
        if not found:
            available = sorted(p.stem for p in (stdlib_dir() / "std").glob("*.cvg"))
            return Problem("E110", f"standard module {'std.' + name!r} not found",
                           (f"available: {', '.join('std.' + a for a in available) or 'none'}",))
        return str(target)


class OverlaySources(DiskSources):
    """The disk, with some files' texts replaced: ``texts`` maps real paths to texts (an
    editor's unsaved buffers). Imports resolve as on disk: an overlay replaces a file,
    it does not create one."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = texts

    def read(self, path: str) -> str:
        text = self.texts.get(os.path.realpath(path))
        return super().read(path) if text is None else text


class SealedSources(RuleSources):
    """The given texts only, ``path -> text`` (the files of a decision record): nothing is
    read from disk but a standard module the texts lack, which is then this install's
    module, added to ``texts`` so that the texts hold every file compiled."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def read(self, path: str) -> str:
        return self.texts[path]

    def real(self, path: str) -> str:
        return path

    def resolve_import(self, importer: str, written: str, project: str) -> str | Problem:
        candidate = os.path.join(os.path.dirname(importer), written)
        for key in (candidate, os.path.normpath(candidate), os.path.relpath(candidate), os.path.abspath(candidate)):
            if key in self.texts:
                return key
        return Problem("E110", f"imported file not found among the rule texts given: {written!r}")

    def std_module(self, name: str) -> str | Problem:
        suffix = f"std{os.sep}{name}.cvg"
        for key in sorted(self.texts):
            if key == suffix or key.endswith(os.sep + suffix) or key.endswith(f"/std/{name}.cvg"):
                return key
        installed = stdlib_dir() / "std" / f"{name}.cvg"  # not among the texts: this install's module
        try:
            self.texts[str(installed)] = installed.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return Problem("E110", f"standard module {'std.' + name!r} not found")
        return str(installed)
