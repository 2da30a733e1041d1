"""Loading input facts from files and from Python objects.

Entry points
------------
``load_fact_paths(paths, schema) -> LoadedFacts``
    Load fact files and directories. ``schema`` maps relation names (possibly
    qualified, ``"graph.edge"``) to ``values.RelationSchema``.
``convert_facts(facts, schema) -> LoadedFacts``
    The same checks and conversions for facts given from Python:
    ``{"edge": [("a", "b")], "applicant": [{"id": "a1", "income": 10}]}``.

``LoadedFacts.facts[rel]`` lists the facts (tuples of converted values) in file
order, duplicates kept; ``LoadedFacts.sources[rel][i]`` is ``(path, line)`` of
``facts[rel][i]`` (path as given, 1-based line; ``("<api>", 0)`` for Python
facts). ``sources[rel]`` is a ``SourceList``: it behaves like a list of tuples
(index, slice, len, iteration, ``==`` with lists) but stores line ranges and
computes JSON line numbers only when first asked. Relations appear in order of
first mention; a file that names a relation without holding any fact of it
still gives it an (empty) entry.

Formats (chosen by file extension; matched case-insensitively)
--------------------------------------------------------------
``.json``   ``{"edge": [["a", "b"], ...], "applicant": [{"id": "a1", "income": 1}]}``
            (relation -> list of arrays, or of objects keyed by column name); or,
            in a file named after a relation (``edge.json``), a list of facts.
            An empty ``.json`` file is an error (it is not JSON).
``.jsonl``  one JSON value per line: ``{"edge": ["a", "b"]}`` in any file, or a bare
            array/object per line in a file named after a relation. Blank lines skipped.
``.csv``    one file per relation (``edge.csv``, ``graph.edge.csv``), comma separated,
            quoting as Python's csv module (RFC 4180). Optional header row: the first
            row is skipped when it equals the column names exactly. Empty lines skipped.
``.tsv``    one file per relation, tab separated, no quoting; optional header as for CSV.
            Empty lines are skipped (a line of spaces is data: for a one-column str
            relation it is a value, otherwise usually an E504 with a hint).
``.facts``  Souffle's input format: as ``.tsv`` but never a header.
``.cvg``    facts in the rule language: ``edge("a", "b").`` Only facts are allowed.
directory   every non-hidden file with a supported extension directly inside it,
            in sorted file-name order; other files and subdirectories are ignored.

Values from JSON and text convert with ``values.convert`` (a JSON string
``"12"`` goes into an int column; a JSON number never goes into a str column;
booleans only into bool columns; floats must be finite). In ``.cvg`` files a
constant must have the column's type, except that an int goes into a float
column.

Diagnostics (stable codes)
--------------------------
All problems raise ``ConvergeError``; all errors of all files are collected
(at most 50 per file; the last one then carries a note). Spans are 1-based;
problems with a whole file (not found, unsupported) have line 0. Problems in
Python facts have the span ``<api>`` (line 0) and a note such as
``at facts['edge'][3][1]``.

- ``E500`` a facts file or directory is missing, unreadable, not a regular file,
  or not valid UTF-8 (the span points at the first invalid byte).
- ``E501`` a malformed file: JSON syntax error (at the decoder's line/col), an empty
  JSON file, a JSON value of the wrong shape (top level not an object or list, facts
  not a list, a fact not an array/object, a JSONL line not ``{"relation": fact}``),
  a duplicate relation key, a CSV syntax error, or a non-fact item in a ``.cvg`` file;
  for Python facts: not a mapping, or a relation's facts not an iterable.
  Syntax errors in ``.cvg`` files keep the parser's own codes (E100, E101).
- ``E502`` a value does not convert to its column's type, e.g.
  ``column "income" of applicant: "abc" is not a valid int``.
- ``E503`` unknown relation: a JSON key, a JSONL key, a ``.cvg`` fact, or the name of a
  file that must be named after its relation (CSV/TSV/facts, a JSON list, a Python key);
  for a file name the span is line 1, column 1.
- ``E504`` a fact with the wrong number of values (``expected 2, got 3``).
- ``E505`` an object fact with an unknown column name, a missing column, or a column
  given twice.
- ``E506`` a file given explicitly has an unsupported extension.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import functools
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Callable

from ..values import dumps_json
from ..diagnostics import ConvergeError, Diagnostic, Span, normalize_newlines, split_lines
from ..values import TYPES, ConversionError, RelationSchema, convert, format_value, has_surrogate, json_float, str_to_int, JsonFloat
from ..regularfile import NotRegularFile, file_kind, read_regular_file
from . import jsonpos
from ._sources import ConstSegment, LazySegment, LinesSegment, RangeSegment, SourceList, _Segment

__all__ = ["LoadedFacts", "load_fact_paths", "convert_facts", "SUPPORTED_EXTENSIONS",
           "MAX_ERRORS_PER_FILE", "SourceList"]

SUPPORTED_EXTENSIONS = (".cvg", ".csv", ".facts", ".json", ".jsonl", ".tsv")
MAX_ERRORS_PER_FILE = 50
API_SOURCE = "<api>"


@dataclass(frozen=True)
class LoadedFacts:
    """Facts per relation in file order, and a parallel ``(path, line)`` per fact."""

    facts: dict[str, list[tuple]]
    sources: dict[str, SourceList]
    # fact -> confidence in (0, 1], for facts given with one (an extra trailing value,
    # or a "confidence" key in an object); facts without one have confidence 1.
    confidence: dict[str, dict[tuple, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class FactText:
    """Facts given as text rather than a file (standard input): ``name`` appears in
    diagnostics and names the relation of a CSV/TSV text (``edge.csv``), ``format``
    is a supported extension without the dot (``json``, ``jsonl``, ``csv``, ...)."""

    name: str
    text: str
    format: str


FACT_FORMATS = tuple(ext[1:] for ext in SUPPORTED_EXTENSIONS)


def guess_format(text: str, name: str = "") -> str | None:
    """The facts format of a text: from ``name``'s extension, else from the content
    (one JSON document: ``json``; one JSON value per line: ``jsonl``); None when unsure."""
    ext = _extension(name)
    if ext in SUPPORTED_EXTENSIONS:
        return ext[1:]
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith(("{", "[")):
        return None
    try:
        json.loads(text.lstrip("\ufeff"))
        return "json"
    except ValueError:
        return "jsonl"


# ---------------------------------------------------------------- public API

def load_fact_paths(paths: Sequence[Any], schema: Mapping[str, RelationSchema]) -> LoadedFacts:
    """Load fact files, directories and databases (``sqlite:///...``, ``postgresql://...`` or
    ``database.DatabaseFacts``); raise ``ConvergeError`` listing every problem."""
    if isinstance(paths, (str, bytes, os.PathLike, FactText)):
        paths = [paths]  # type: ignore[list-item]
    acc = _Accumulator()
    diagnostics: list[Diagnostic] = []
    for raw in paths:
        if isinstance(raw, FactText):
            if "." + raw.format not in SUPPORTED_EXTENSIONS:
                diagnostics.append(_file_diag("E506", f"unsupported facts format {raw.format!r}", raw.name,
                                              (f"supported: {', '.join(FACT_FORMATS)}",)))
            else:
                diagnostics.extend(_FileLoader(raw.name, schema, acc, raw.text, "." + raw.format).load())
            continue
        from .database import DatabaseFacts, is_database_url, load_database

        if isinstance(raw, DatabaseFacts) or is_database_url(raw):
            try:
                loaded = load_database(raw, schema)  # type: ignore[arg-type]
            except ConvergeError as err:
                diagnostics.extend(err.diagnostics)
                continue
            for rel, rel_facts in loaded.facts.items():
                acc.add_all(rel, rel_facts, loaded.sources[rel])
            for rel, table in loaded.confidence.items():
                # the database loader keeps a confidence only for facts every row of which has one
                given = Counter(f for f in loaded.facts.get(rel, ()) if f in table)
                for fact, value in table.items():
                    acc.note_confidence(rel, fact, value, given[fact])
            continue
        path = _path_str(raw)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            diagnostics.append(_file_diag("E500", f"facts file not found: {path}", path))
            continue
        except (OSError, ValueError) as err:
            diagnostics.append(_file_diag("E500", f"cannot access facts path {path}: {_reason(err)}", path))
            continue
        if stat.S_ISDIR(st.st_mode):
            diagnostics.extend(_load_directory(path, schema, acc))
        elif not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            diagnostics.append(_file_diag("E500", f"not a regular file: {path} is {file_kind(st.st_mode)}", path))
        elif _extension(path) not in SUPPORTED_EXTENSIONS:
            diagnostics.append(_file_diag(
                "E506", f"unsupported facts file extension {_extension(path) or '(none)'!r}", path,
                (f"supported: {', '.join(SUPPORTED_EXTENSIONS)}, or a directory of such files",)))
        else:
            diagnostics.extend(_FileLoader(path, schema, acc).load())
    if diagnostics:
        raise ConvergeError(diagnostics)
    return acc.result()


def convert_facts(facts: Mapping[str, Iterable[Any]], schema: Mapping[str, RelationSchema], *,
                  text: str | None = None, source: str = API_SOURCE, prefix: tuple = ()) -> LoadedFacts:
    """Check and convert facts given from Python (arrays or objects by column name).

    When the facts were decoded from JSON ``text`` (at JSON path ``prefix`` in it, e.g. an
    HTTP request body), diagnostics point at line:col of that text under the name ``source``."""
    acc = _Accumulator()
    loader = _FileLoader(source, schema, acc)
    diagnostics = loader.load_api(facts, text, prefix)
    if diagnostics:
        raise ConvergeError(diagnostics)
    return acc.result()


# ---------------------------------------------------------------- helpers

def _path_str(raw: object) -> str:
    try:
        path = os.fspath(raw)  # type: ignore[arg-type]
    except TypeError:
        return str(raw)
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err)


def _file_diag(code: str, message: str, path: str, notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(code, message, Span(path, 0, 0), notes=notes)


def _show(value: object, limit: int = 60) -> str:
    """A value as it appears in messages (JSON notation, shortened)."""
    try:
        text = value.text if type(value) is JsonFloat else dumps_json(value, ensure_ascii=False)
    except Exception:  # not JSON (Python facts), or nested too deeply
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    if has_surrogate(text):  # a message is valid Unicode: a lone surrogate shows as its JSON escape
        text = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _convert(value: object, typ: str) -> object:
    """``values.convert`` plus finiteness for floats; every failure is a ConversionError."""
    if isinstance(value, str) and has_surrogate(value):
        raise ConversionError(f"{_show(value)} is not valid Unicode (it holds a lone surrogate)")
    try:
        result = convert(value, typ)
    except (ValueError, TypeError, OverflowError):  # ConversionError is a ValueError
        raise ConversionError(f"{_show(value)} is not a valid {typ}") from None
    if typ == "float" and not math.isfinite(result):  # type: ignore[arg-type]
        raise ConversionError(f"{_show(value)} is not a valid float")
    return result


_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class _Stop(Exception):
    """Too many errors in one file: stop reading it."""


class _DupDict(dict):
    """A JSON object that had duplicate keys (the last value kept, like json.loads)."""

    dups: list = []


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        result = _DupDict(pairs)
        seen: set[str] = set()
        result.dups = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return result


# a float literal keeps its text where its float could be another integer (values.JsonFloat)
_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_float=json_float)
_loads = _DECODER.decode
_BIG_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_int=str_to_int, parse_float=json_float)


def _misordered_header(fields: list[str], names: list[str]) -> list[str] | None:
    """The column names of a first row that names the declared columns in another order (maybe
    followed by ``confidence``); None for any other row, the declared order included."""
    named = fields[:-1] if len(fields) == len(names) + 1 and fields[-1] == "confidence" else fields
    if len(names) > 1 and named != names and sorted(named) == sorted(names):
        return named
    return None


class _Accumulator:
    def __init__(self) -> None:
        self.facts: dict[str, list[tuple]] = {}
        self.sources: dict[str, SourceList] = {}
        self.confidence: dict[str, dict[tuple, float]] = {}
        self.with_confidence: dict[str, Counter] = {}  # how many times each fact came with a confidence

    def add(self, relation: str, facts: list[tuple], segment: _Segment) -> None:
        existing = self.facts.get(relation)
        if existing is None:
            self.facts[relation] = facts
            self.sources[relation] = SourceList()
        else:
            existing.extend(facts)
        self.sources[relation].add(segment)

    def add_all(self, relation: str, facts: list[tuple], sources: SourceList) -> None:
        """Facts with their sources loaded elsewhere (a database)."""
        self.add(relation, facts, ConstSegment("", 0, 0))
        self.sources[relation].extend(sources)

    def result(self) -> LoadedFacts:
        # a fact given both with and without a confidence has confidence 1 (facts.md)
        for rel, table in self.confidence.items():
            given = self.with_confidence[rel]
            seen = Counter(f for f in self.facts.get(rel, ()) if f in table)
            for fact, times in seen.items():
                if times > given[fact]:
                    del table[fact]
        return LoadedFacts(self.facts, self.sources, self.confidence)

    def note_confidence(self, relation: str, fact: tuple, value: float, times: int = 1) -> None:
        """``fact`` (added to the facts too) was given ``times`` times with a confidence, the best ``value``."""
        table = self.confidence.setdefault(relation, {})
        table[fact] = max(value, table.get(fact, 0.0))
        self.with_confidence.setdefault(relation, Counter())[fact] += times


class _Spec:
    """What the loaders need of one relation, computed once."""

    __slots__ = ("name", "arity", "names", "types", "exact", "index")

    def __init__(self, name: str, schema: RelationSchema):
        self.name = name
        self.names = tuple(c.name for c in schema.columns)
        self.types = tuple(c.type for c in schema.columns)
        self.arity = len(self.names)
        self.exact = tuple(TYPES.get(t, object) for t in self.types)
        self.index = {n: k for k, n in enumerate(self.names)}

    def columns_note(self) -> str:
        if not self.names:
            return f"{self.name} has no columns"
        return f"columns of {self.name}: " + ", ".join(f"{n}: {t}" for n, t in zip(self.names, self.types))


def facts_directory_files(path: str) -> list[str]:
    """The names of the fact files of a facts directory, sorted: entries with a supported
    extension, hidden ones and directories left out (OSError when it cannot be listed)."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".")
                      and _extension(e.name) in SUPPORTED_EXTENSIONS and _is_file(e))


def _load_directory(path: str, schema: Mapping[str, RelationSchema], acc: _Accumulator) -> list[Diagnostic]:
    try:
        names = facts_directory_files(path)
    except OSError as err:
        return [_file_diag("E500", f"cannot read facts directory {path}: {_reason(err)}", path)]
    diagnostics: list[Diagnostic] = []
    for name in names:
        diagnostics.extend(_FileLoader(os.path.join(path, name), schema, acc).load())
    return diagnostics


def _is_file(entry: os.DirEntry) -> bool:
    """Whether a directory entry is read as a facts file: anything but a directory, so a FIFO
    or a device named like a facts file is refused (E500) rather than silently left out."""
    try:
        return not entry.is_dir()
    except OSError:
        return True


# ---------------------------------------------------------------- one file

class _FileLoader:
    """Loads one file (or the Python facts) and collects its diagnostics."""

    def __init__(self, path: str, schema: Mapping[str, RelationSchema], acc: _Accumulator,
                 given: str | None = None, ext: str | None = None):
        self.path = path
        self.given = given  # the text itself (standard input), not read from ``path``
        self.ext = ext
        self.schema = schema
        self.acc = acc
        self.diags: list[Diagnostic] = []
        self.pending: list[tuple[tuple, str, str, str, tuple[str, ...]]] = []
        self.overflow = False
        self.text: str | None = None
        self.specs: dict[str, _Spec | None] = {}
        self.out: list[tuple[str, list[tuple], _Segment]] = []
        self.json_lines: _JsonLines | None = None
        # Strings may hold lone surrogates (checked value by value): Python facts,
        # or JSON text with a \uD800-\uDFFF escape. Strictly decoded UTF-8 cannot.
        self.escapes = True

    # -- errors
    def _room(self) -> None:
        if len(self.diags) + len(self.pending) >= MAX_ERRORS_PER_FILE:
            self.overflow = True
            raise _Stop

    def error(self, code: str, message: str, line: int, col: int, end_col: int = 0,
              notes: Iterable[str] = (), span: Span | None = None) -> None:
        self._room()
        if span is None:
            span = Span(self.path, line, col, line if end_col else 0, end_col)
        self.diags.append(Diagnostic(code, message, span, notes=tuple(notes)))

    def pend(self, path: tuple, kind: str, code: str, message: str, notes: Iterable[str] = ()) -> None:
        """An error at a JSON path, located later by ``resolve``."""
        self._room()
        self.pending.append((path, kind, code, message, tuple(notes)))

    def resolve(self, text: str, line: int | None = None) -> None:
        """Turn pending JSON-path errors into diagnostics (``line`` set: ``text`` is that line)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        wanted = {(p, kind) for p, kind, *_ in pending}
        found = jsonpos.scan(text, wanted, max(len(p) for p, *_ in pending))
        index = jsonpos.LineIndex(text) if line is None else None
        for path, kind, code, message, notes in pending:
            start, end = found.get((path, kind), (0, 1))
            if index is None:
                col, end_col = start + 1, end + 1
            else:
                line, col = index.position(start)
                end_line, end_col = index.position(end)
                if end_line != line:
                    end_col = 0
            self.diags.append(Diagnostic(code, message, Span(self.path, line, col, line if end_col else 0, end_col),
                                         notes=notes))

    def resolve_api(self) -> None:
        for path, kind, code, message, notes in self.pending:
            where = "facts" + "".join(f"[{step!r}]" for step in path)
            if kind == jsonpos.KEY:
                where = f"key {path[-1]!r} of " + ("facts" + "".join(f"[{s!r}]" for s in path[:-1]))
            self.diags.append(Diagnostic(code, message, Span(API_SOURCE, 0, 0), notes=notes + (f"at {where}",)))
        self.pending = []

    def finish(self) -> list[Diagnostic]:
        if self.overflow and self.diags:
            last = self.diags[-1]
            self.diags[-1] = replace(last, notes=last.notes + (
                f"stopped after {MAX_ERRORS_PER_FILE} errors in this file",))
        if self.diags:
            if self.text is not None and self.path != API_SOURCE:
                lines = _source_lines(self.ext or _extension(self.path), self.text)
                return [d.quoting(lines) if d.span.file == self.path else d for d in self.diags]
            return self.diags
        for relation, facts, segment in self.out:
            self.acc.add(relation, facts, segment)
        return []

    # -- relations
    def spec(self, name: object) -> _Spec | None:
        if not isinstance(name, str):
            return None
        if name not in self.specs:
            schema = self.schema.get(name)
            self.specs[name] = _Spec(name, schema) if schema is not None else None
        return self.specs[name]

    def unknown_notes(self, name: object) -> list[str]:
        names = sorted(k for k in self.schema if isinstance(k, str))
        notes = []
        if isinstance(name, str):
            close = difflib.get_close_matches(name, names, n=1)
            if close:
                notes.append(f'did you mean "{close[0]}"?')
        if not names:
            notes.append("no relations are declared")
        elif len(names) <= 12:
            notes.append("known relations: " + ", ".join(names))
        return notes

    def stem_spec(self) -> _Spec | None:
        return self.spec(_stem(self.path))

    def unknown_stem(self) -> None:
        stem = _stem(self.path)
        self.error("E503", f'unknown relation "{stem}" (named by the file name)', 1, 1,
                   notes=self.unknown_notes(stem))

    def emit(self, relation: str, facts: list[tuple], segment: _Segment) -> None:
        self.out.append((relation, facts, segment))

    # -- entry points
    def load(self) -> list[Diagnostic]:
        text = self.read() if self.given is None else self.given.removeprefix("\ufeff")
        if text is not None:
            self.text = text
            ext = self.ext or _extension(self.path)
            self.escapes = _SURROGATE_ESCAPE.search(text) is not None
            try:
                if ext == ".json":
                    self.load_json(text)
                elif ext == ".jsonl":
                    self.load_jsonl(text)
                elif ext == ".csv":
                    self.load_csv(text)
                elif ext == ".tsv":
                    self.load_tsv(text, header=True)
                elif ext == ".facts":
                    self.load_tsv(text, header=False)
                else:
                    self.load_cvg(text)
            except _Stop:
                pass
            if self.pending and ext == ".json":
                self.resolve(text)
        return self.finish()

    def load_api(self, facts: object, text: str | None = None, prefix: tuple = ()) -> list[Diagnostic]:
        try:
            self._load_api(facts)
        except _Stop:
            pass
        if text is None:
            self.resolve_api()
        else:
            self.pending = [(prefix + path, *rest) for path, *rest in self.pending]
            self.resolve(text)
        return self.finish()

    def read(self) -> str | None:
        path = self.path
        try:
            data = read_regular_file(path)
        except NotRegularFile as kind:
            self.error("E500", f"not a regular file: {path} is {kind}", 0, 0)
            return None
        except FileNotFoundError:
            self.error("E500", f"facts file not found: {path}", 0, 0)
            return None
        except (OSError, ValueError) as err:
            self.error("E500", f"cannot read facts file {path}: {_reason(err)}", 0, 0)
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            line_start = data.rfind(b"\n", 0, err.start) + 1
            col = len(data[line_start:err.start].decode("utf-8", "replace")) + 1
            if line == 1 and data.startswith(b"\xef\xbb\xbf"):
                col -= 1
            replaced = data.decode("utf-8", "replace")
            self.text = replaced[1:] if replaced.startswith("\ufeff") else replaced  # quoted by render()
            self.error("E500", f"facts file is not valid UTF-8 (byte 0x{data[err.start]:02x})", line, col,
                       notes=("is it a binary file?",))
            return None
        return text[1:] if text.startswith("\ufeff") else text

    def is_header(self, fields: list[str], spec: _Spec, line: int, width: int) -> bool:
        """Whether a first row is a header: the declared column names in order (and maybe a
        ``confidence`` column). The same names in another order are E505, located at the row:
        read as data, that row would be a fact made of column names, and the columns would
        likely be swapped in every row after it."""
        names = list(spec.names)
        if fields in (names, names + ["confidence"]):
            return True
        named = _misordered_header(fields, names)
        if named is not None:
            self.error("E505", f"the first row names the columns of {spec.name} in another order "
                               f"({', '.join(named)}) than declared ({', '.join(names)}): write the header in "
                               "the declared order, or leave it out", line, 1, 1 + max(width, 1))
            return True
        return False

    # -- tab separated (.tsv, .facts)
    def load_tsv(self, text: str, header: bool) -> None:
        spec = self.stem_spec()
        if spec is None:
            self.unknown_stem()
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        numbers: list[int] | None = None
        if "" in lines:
            numbers = [i for i, line in enumerate(lines, 1) if line]
            lines = [line for line in lines if line]
        first = 1
        if header and lines and self.is_header(lines[0].split("\t"), spec, numbers[0] if numbers else 1, len(lines[0])):
            del lines[0]
            if numbers is None:
                first = 2
            else:
                del numbers[0]
        if spec.arity == 1 and "\t" not in text:
            facts = _fast_single(lines, spec.types[0])
        else:
            facts = _fast_rows(map(str.split, lines, repeat("\t")), spec)
        rows: list[list[str]] = []
        if facts is None:
            rows = [line.split("\t") for line in lines]

        def line_of(i: int) -> int:
            return first + i if numbers is None else numbers[i]

        def position(i: int, k: int) -> tuple[int, int, int]:
            row = rows[i]
            col = 1 + sum(len(field) + 1 for field in row[:k])
            return line_of(i), col, col + max(len(row[k]), 1)

        if facts is None:
            facts = self.slow_table(rows, spec, line_of, position, lambda i: len(lines[i]))
        segment = RangeSegment(self.path, first, len(facts)) if numbers is None else LinesSegment(self.path, numbers)
        self.emit(spec.name, facts, segment)

    # -- comma separated (.csv)
    def load_csv(self, text: str) -> None:
        spec = self.stem_spec()
        if spec is None:
            self.unknown_stem()
            return
        if self.fast_csv(text, spec):
            return
        rows, starts = self.read_csv(text)
        if rows is None:
            return
        if [] in rows:
            keep = [i for i, row in enumerate(rows) if row]
            rows = [rows[i] for i in keep]
            starts = [starts[i] for i in keep] if starts is not None else [i + 1 for i in keep]
        first = 1
        if rows and self.is_header(rows[0], spec, starts[0] if starts else 1, len(",".join(rows[0]))):
            del rows[0]
            if starts is None:
                first = 2
            else:
                del starts[0]
        facts = _fast_rows(rows, spec)
        index: jsonpos.LineIndex | None = None
        offsets: dict[int, list[tuple[int, int]]] = {}

        def line_of(i: int) -> int:
            return first + i if starts is None else starts[i]

        def position(i: int, k: int) -> tuple[int, int, int]:
            nonlocal index
            if index is None:
                index = jsonpos.LineIndex(text, _CSV_BREAKS)
            line = line_of(i)
            if i not in offsets:
                start = index.line_start(line)
                offsets[i] = _csv_field_offsets(text, start, len(rows[i]))
            begin, end = offsets[i][k]
            l1, c1 = index.position(begin)
            l2, c2 = index.position(end)
            return l1, c1, (c2 if l2 == l1 and c2 > c1 else c1 + 1)

        if facts is None:
            facts = self.slow_table(rows, spec, line_of, position, None)
        segment = RangeSegment(self.path, first, len(facts)) if starts is None else LinesSegment(self.path, starts)
        self.emit(spec.name, facts, segment)

    def fast_csv(self, text: str, spec: _Spec) -> bool:
        """The common case in one streaming pass: every record one line, no blank lines, no errors."""
        old_limit = csv.field_size_limit()
        csv.field_size_limit(max(old_limit, len(text) + 1))
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            head = next(reader, None)
            if head is None:
                self.emit(spec.name, [], RangeSegment(self.path, 1, 0))
                return True
            if _misordered_header(head, list(spec.names)) is not None:
                return False  # a header in another order: the full reader reports it
            first = 2 if head in (list(spec.names), list(spec.names) + ["confidence"]) else 1
            facts = _fast_rows(reader if first == 2 else chain([head], reader), spec)
        except csv.Error:
            return False
        finally:
            csv.field_size_limit(old_limit)
        if facts is None or reader.line_num != len(facts) + first - 1:
            return False
        self.emit(spec.name, facts, RangeSegment(self.path, first, len(facts)))
        return True

    def read_csv(self, text: str) -> tuple[list[list[str]] | None, list[int] | None]:
        """Rows, and their start lines when some record spans lines (else None: row i is line i+1)."""
        old_limit = csv.field_size_limit()
        csv.field_size_limit(max(old_limit, len(text) + 1))
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            try:
                rows = list(reader)
                if reader.line_num == len(rows):
                    return rows, None
            except csv.Error:
                pass
            reader = csv.reader(io.StringIO(text, newline=""))
            rows, starts = [], []
            previous_end = 0
            try:
                for row in reader:
                    rows.append(row)
                    starts.append(previous_end + 1)
                    previous_end = reader.line_num
            except csv.Error as err:
                self.error("E501", f"malformed CSV: {err}", max(reader.line_num, 1), 1)
                return None, None
            return rows, starts
        finally:
            csv.field_size_limit(old_limit)

    def slow_table(self, rows: Sequence[Sequence[str]], spec: _Spec, line_of: Callable[[int], int],
                   position: Callable[[int, int], tuple[int, int, int]],
                   width: Callable[[int], int] | None) -> list[tuple]:
        """Rows of text fields → facts, one value at a time, reporting every problem."""
        n = spec.arity
        facts: list[tuple] = []
        for i, row in enumerate(rows):
            if n == 0 and row == [""]:
                facts.append(())  # a CSV line "" (one empty field): the fact of a relation without columns
                continue
            conf = None
            if len(row) == n + 1 and n > 0 and _is_confidence(row[-1]):
                conf = float(row[-1])  # one extra value in (0, 1]: the fact's confidence
                row = row[:-1]
            if len(row) != n:
                end = 1 + width(i) if width is not None else 0
                notes = ["the line holds only whitespace"] if not "".join(row).strip() else []
                self.error("E504", f"wrong number of values for {spec.name}: expected {n}, got {len(row)}",
                           line_of(i), 1, end if end > 1 else 0, notes=notes)
                continue
            values = []
            ok = True
            for k, (typ, text) in enumerate(zip(spec.types, row)):
                if typ == "str":
                    values.append(text)
                    continue
                try:
                    values.append(_convert(text, typ))
                except ConversionError as err:
                    line, col, end_col = position(i, k)
                    self.error("E502", f'column "{spec.names[k]}" of {spec.name}: {err}', line, col, end_col)
                    ok = False
            if ok:
                facts.append(tuple(values))
                if conf is not None and conf < 1.0:
                    self.acc.note_confidence(spec.name, facts[-1], conf)
        return facts

    # -- JSON
    def load_json(self, text: str) -> None:
        if not text.strip():
            self.error("E501", "empty JSON file; expected an object of relation name to facts, or a list of facts",
                       1, 1)
            return
        data = self.decode_json(text, None)
        if data is _FAILED:
            return
        if isinstance(data, dict):
            for key in getattr(data, "dups", ()) if isinstance(data, _DupDict) else ():
                self.pend((key,), jsonpos.KEY, "E501", f'relation "{key}" appears twice in this object',
                          ("a JSON object keeps only the last value of a repeated key",))
            for key, value in data.items():
                spec = self.spec(key)
                if spec is None:
                    self.pend((key,), jsonpos.KEY, "E503", f'unknown relation "{key}"', self.unknown_notes(key))
                    continue
                if not isinstance(value, list):
                    self.pend((key,), jsonpos.VALUE, "E501",
                              f"the facts of {key} must be a JSON array; found {_json_kind(value)}")
                    continue
                self.emit(key, self.json_facts(spec, value, (key,)), LazySegment(
                    self.path, len(value), _JsonLines.for_text(self, text).resolver((key,), len(value))))
        elif isinstance(data, list):
            spec = self.stem_spec()
            if spec is None:
                self.error("E503", f'unknown relation "{_stem(self.path)}" (a JSON list of facts is named by the '
                           "file name)", 1, 1, notes=self.unknown_notes(_stem(self.path)) + [
                               'or write an object such as {"edge": [["a", "b"]]}'])
                return
            self.emit(spec.name, self.json_facts(spec, data, ()), LazySegment(
                self.path, len(data), _JsonLines.for_text(self, text).resolver((), len(data))))
        else:
            self.pend((), jsonpos.VALUE, "E501",
                      f"expected a JSON object (relation name to facts) or a list of facts; found {_json_kind(data)}")

    def decode_json(self, text: str, line: int | None) -> Any:
        try:
            try:
                return _loads(text)
            except ValueError as err:  # an int beyond CPython's digit limit: decode without one
                if isinstance(err, json.JSONDecodeError):
                    raise
                return _BIG_DECODER.decode(text)
        except json.JSONDecodeError as err:
            self.error("E501", f"malformed JSON: {err.msg}", err.lineno if line is None else line, err.colno)
        except RecursionError:
            self.error("E501", "malformed JSON: nested too deeply", line or 1, 1)
        except ValueError as err:  # e.g. an integer with too many digits
            self.error("E501", f"malformed JSON: {err}", line or 1, 1)
        return _FAILED

    def json_facts(self, spec: _Spec, items: Iterable[Any], prefix: tuple) -> list[tuple]:
        facts = []
        for i, item in enumerate(items):
            fact = self.json_fact(spec, item, prefix + (i,))
            if fact is not None:
                facts.append(fact)
        return facts

    def json_fact(self, spec: _Spec, item: Any, path: tuple) -> tuple | None:
        """One fact: an array of values, or an object by column name (also any Sequence/Mapping)."""
        if isinstance(item, (list, tuple)) or (isinstance(item, Sequence) and not isinstance(item, (str, bytes, bytearray))):
            if len(item) == spec.arity + 1 and isinstance(item[-1], (int, float)) and not isinstance(item[-1], bool) \
                    and 0 < item[-1] <= 1:
                conf = self.confidence_value(item[-1], path + (spec.arity,))
                fact = self.json_values(spec, [(k, k, v) for k, v in enumerate(item[:-1])], path)
                if fact is not None and conf is not None:
                    self.acc.note_confidence(spec.name, fact, conf)
                return fact if conf is not None else None
            if len(item) != spec.arity:
                self.pend(path, jsonpos.VALUE, "E504",
                          f"wrong number of values for {spec.name}: expected {spec.arity}, got {len(item)}",
                          (spec.columns_note(),))
                return None
            return self.json_values(spec, [(k, k, v) for k, v in enumerate(item)], path)
        if isinstance(item, Mapping):
            ok = True
            for key in getattr(item, "dups", ()) if isinstance(item, _DupDict) else ():
                self.pend(path + (key,), jsonpos.KEY, "E505", f'column "{key}" of {spec.name} is given twice')
                ok = False
            conf: float | None = 1.0
            if "confidence" in item and "confidence" not in spec.index:
                conf = self.confidence_value(item["confidence"], path + ("confidence",))
                ok = conf is not None
            for key in item:
                if key == "confidence" and "confidence" not in spec.index:
                    continue
                if key not in spec.index:
                    shown = f'"{key}"' if isinstance(key, str) else repr(key)
                    self.pend(path + (key,), jsonpos.KEY, "E505", f"unknown column {shown} of {spec.name}",
                              (spec.columns_note(),))
                    ok = False
            for name in spec.names:
                if name not in item:
                    self.pend(path, jsonpos.VALUE, "E505", f'missing column "{name}" of {spec.name}')
                    ok = False
            if not ok:  # still check the values that are there
                self.json_values(spec, [(k, name, item[name]) for k, name in enumerate(spec.names)
                                        if name in item], path)
                return None
            fact = self.json_values(spec, [(k, name, item[name]) for k, name in enumerate(spec.names)], path)
            if fact is not None and conf is not None and conf < 1.0:
                self.acc.note_confidence(spec.name, fact, conf)
            return fact
        self.pend(path, jsonpos.VALUE, "E501",
                  f"a fact of {spec.name} must be an array of {spec.arity} values or an object with its "
                  f"column names; found {_json_kind(item)}", (spec.columns_note(),))
        return None

    def confidence_value(self, value: Any, path: tuple) -> float | None:
        """A fact's confidence: a number in (0, 1] (text that parses as one in CSV/TSV)."""
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, OverflowError):
            number = None
        if number is None or not (0.0 < number <= 1.0):
            self.pend(path, jsonpos.VALUE, "E508", f"a fact's confidence is a number in (0, 1], got {_show(value)}")
            return None
        return number

    def json_values(self, spec: _Spec, values: list[tuple[int, Any, Any]], path: tuple) -> tuple | None:
        """Convert ``(column index, path step, value)`` triples; None if any fails."""
        out = []
        ok = True
        exact, types = spec.exact, spec.types
        for k, step, value in values:
            if type(value) is exact[k] and (type(value) is not float or math.isfinite(value)) \
                    and not (self.escapes and type(value) is str and has_surrogate(value)):
                out.append(value)
                continue
            try:
                out.append(_convert(value, types[k]))
            except ConversionError as err:
                self.pend(path + (step,), jsonpos.VALUE, "E502", f'column "{spec.names[k]}" of {spec.name}: {err}')
                ok = False
        return tuple(out) if ok else None

    # -- JSON Lines
    def load_jsonl(self, text: str) -> None:
        stem = self.stem_spec()
        facts: dict[str, list[tuple]] = {}
        lines: dict[str, list[int]] = {}
        try:
            for number, line in enumerate(text.split("\n"), 1):
                if line.endswith("\r"):
                    line = line[:-1]
                if not line.strip():
                    continue
                value = self.decode_json(line, number)
                if value is _FAILED:
                    continue
                try:
                    spec, fact = self.jsonl_fact(value, stem)
                finally:
                    self.resolve(line, number)
                if spec is not None:
                    facts.setdefault(spec.name, []).append(fact)  # type: ignore[arg-type]
                    lines.setdefault(spec.name, []).append(number)
        finally:
            for name, rel_facts in facts.items():
                self.emit(name, rel_facts, LinesSegment(self.path, lines[name]))

    def jsonl_fact(self, value: Any, stem: _Spec | None) -> tuple[_Spec | None, tuple | None]:
        if isinstance(value, dict) and len(value) == 1:
            key = next(iter(value))
            if stem is None or (key not in stem.index and self.spec(key) is not None):
                if isinstance(value, _DupDict):
                    self.pend((key,), jsonpos.KEY, "E501", f'relation "{key}" appears twice in this object')
                    return None, None
                spec = self.spec(key)
                if spec is None:
                    self.pend((key,), jsonpos.KEY, "E503", f'unknown relation "{key}"', self.unknown_notes(key))
                    return None, None
                fact = self.json_fact(spec, value[key], (key,))
                return (spec, fact) if fact is not None else (None, None)
        if stem is not None:
            fact = self.json_fact(stem, value, ())
            return (stem, fact) if fact is not None else (None, None)
        notes = ['bare facts (an array or object per line) need a file named after their relation, e.g. "edge.jsonl"']
        self.pend((), jsonpos.VALUE, "E501",
                  'expected an object with one key, the relation name, e.g. {"edge": ["a", "b"]}; '
                  f"found {_json_kind(value)}" + (" with several keys" if isinstance(value, dict) and value else ""),
                  notes)
        return None, None

    # -- rule-language facts (.cvg)
    def load_cvg(self, text: str) -> None:
        from ..syntax import ast
        from ..syntax.parser import parse_text

        try:
            source = parse_text(text, self.path)
        except ConvergeError as err:
            for diag in err.diagnostics:
                self._room()
                self.diags.append(diag)
            return
        except RecursionError:
            self.error("E501", "facts nested too deeply", 1, 1)
            return
        facts: dict[str, list[tuple]] = {}
        lines: dict[str, list[int]] = {}
        for item in source.items:
            if not (isinstance(item, ast.Rule) and not item.body
                    and all(isinstance(arg, ast.Const) for arg in item.head.args)):
                notes = []
                if isinstance(item, ast.Rule) and not item.body:
                    notes.append("the arguments of a fact must be constants")
                self.error("E501", "only facts are allowed in a facts file", 0, 0, notes=notes,
                           span=_fix_span(item.span, self.path))
                continue
            head = item.head
            spec = self.spec(head.relation)
            if spec is None:
                self.error("E503", f'unknown relation "{head.relation}"', 0, 0,
                           notes=self.unknown_notes(head.relation), span=_fix_span(head.span, self.path))
                continue
            if len(head.args) != spec.arity:
                self.error("E504", f"wrong number of values for {spec.name}: expected {spec.arity}, "
                           f"got {len(head.args)}", 0, 0, notes=(spec.columns_note(),),
                           span=_fix_span(head.span, self.path))
                continue
            values = []
            ok = True
            for k, arg in enumerate(head.args):
                value = arg.value  # type: ignore[union-attr]
                typ = spec.types[k]
                if type(value) is spec.exact[k]:
                    values.append(value)
                elif typ == "float" and type(value) is int:
                    try:
                        values.append(float(value))
                    except OverflowError:
                        ok = False
                        self.error("E502", f'column "{spec.names[k]}" of {spec.name}: {_short(format_value(value))} is too large '
                               "for a float",
                                   0, 0, span=_fix_span(arg.span, self.path))
                else:
                    ok = False
                    self.error("E502", f'column "{spec.names[k]}" of {spec.name}: '
                               f"{_short(format_value(value))} is not a valid {typ}", 0, 0,
                               span=_fix_span(arg.span, self.path))  # type: ignore[union-attr]
            if ok:
                facts.setdefault(spec.name, []).append(tuple(values))
                lines.setdefault(spec.name, []).append(head.span.line or item.span.line)
        for name, rel_facts in facts.items():
            self.emit(name, rel_facts, LinesSegment(self.path, lines[name]))

    # -- Python facts
    def _load_api(self, facts: object) -> None:
        if not isinstance(facts, Mapping):
            self.error("E501", f"facts must be a mapping of relation name to facts; found {_json_kind(facts)}",
                       0, 0, span=Span(self.path, 0, 0))
            return
        for key, items in facts.items():
            spec = self.spec(key)
            if spec is None:
                self.pend((key,), jsonpos.KEY, "E503", f"unknown relation {_quote(key)}", self.unknown_notes(key))
                continue
            if isinstance(items, (str, bytes, bytearray, Mapping)) or not isinstance(items, Iterable):
                self.pend((key,), jsonpos.VALUE, "E501",
                          f"the facts of {key} must be a list (or other iterable) of facts; found {_json_kind(items)}")
                continue
            rel_facts = self.json_facts(spec, items, (key,))
            self.emit(key, rel_facts, ConstSegment(API_SOURCE, 0, len(rel_facts)))


_FAILED = object()
_CSV_BREAKS = "\r\n|\r|\n"  # the csv module counts a bare CR as a line break too
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_confidence(text: str) -> bool:
    try:
        return 0.0 < float(text) <= 1.0
    except ValueError:
        return False


def _quote(name: object) -> str:
    return f'"{name}"' if isinstance(name, str) else repr(name)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fix_span(span: Span, path: str) -> Span:
    """AST spans carry the file name given to the parser; keep them, but never line 0 for a located item."""
    if span.line <= 0:
        return Span(path, 1, 1)
    return span


class _JsonLines:
    """Lines of the facts of one JSON file, computed once on first request."""

    def __init__(self, text: str):
        self.text: str | None = text
        self.lines: dict[tuple, int] | None = None

    @staticmethod
    def for_text(loader: _FileLoader, text: str) -> "_JsonLines":
        if loader.json_lines is None:
            loader.json_lines = _JsonLines(text)
        return loader.json_lines

    def resolver(self, prefix: tuple, count: int) -> Callable[[], list[int]]:
        def resolve() -> list[int]:
            if self.lines is None:
                assert self.text is not None
                found = jsonpos.scan(self.text, None, 2)
                index = jsonpos.LineIndex(self.text)
                self.lines = {path: index.position(start)[0] for (path, _kind), (start, _end) in found.items()}
                self.text = None
            return [self.lines[prefix + (i,)] for i in range(count)]
        return resolve


ROW_CONVERTERS_KEPT = 256  # column signatures whose converters are kept; a long-lived process sees ever new ones


@functools.lru_cache(maxsize=ROW_CONVERTERS_KEPT)
def _row_converter(types: tuple[str, ...]) -> Callable[[Iterable[Sequence[str]]], list[tuple]]:
    """A list comprehension made for one column signature, as fast as a hand-written loop.

    ``(str, int)`` gives ``[(v0, _int(v1)) for v0, v1 in rows]``: unpacking checks
    the arity and the converters raise ValueError/KeyError on anything unusual,
    in which case the caller falls back to the value-by-value slow path. The
    generated code contains only fixed names, never text from input or schema.
    Kept for the ``ROW_CONVERTERS_KEPT`` most recently used signatures only: the
    signatures are the schemas of the jobs a process runs, which have no bound.
    """
    names = [f"v{k}" for k in range(len(types))]
    calls = {"str": "{}", "int": "_int({})", "float": "_float({})", "bool": "_bool({})"}
    items = ", ".join(calls[t].format(n) for t, n in zip(types, names))
    code = f"def convert(rows):\n    return [({items},) for {', '.join(names)}, in rows]\n"
    namespace: dict[str, Any] = {"_int": int, "_float": float, "_bool": _BOOLS.__getitem__}
    exec(compile(code, "<converge_rules.io row converter>", "exec"), namespace)
    return namespace["convert"]


def _fast_rows(rows: Iterable[Sequence[str]], spec: _Spec) -> list[tuple] | None:
    """All rows converted at C speed, or None if any row or value needs a closer look."""
    if spec.arity == 0 or any(t not in ("str", "int", "float", "bool") for t in spec.types):
        return None
    try:
        facts = _row_converter(spec.types)(rows)
    except (ValueError, KeyError):
        return None
    for k, typ in enumerate(spec.types):
        if typ == "float" and facts:
            column = map(itemgetter(k), facts)
            try:
                finite = math.isfinite(sum(column))
            except OverflowError:  # pragma: no cover - float sums do not raise
                finite = False
            if not finite and not all(map(math.isfinite, map(itemgetter(k), facts))):
                return None
    return facts


_SINGLE = {"int": int, "float": float, "bool": _BOOLS.__getitem__}


def _fast_single(lines: list[str], typ: str) -> list[tuple] | None:
    """One-column relations without a tab anywhere: every line is one value."""
    if typ == "str":
        return list(zip(lines))
    if typ not in _SINGLE:
        return None
    try:
        values = list(map(_SINGLE[typ], lines))
    except (ValueError, KeyError):
        return None
    if typ == "float" and not all(map(math.isfinite, values)):
        return None
    return list(zip(values))


def _csv_field_offsets(text: str, start: int, count: int) -> list[tuple[int, int]]:
    """(start, end) offsets of the first ``count`` fields of the CSV record at ``start``."""
    fields = []
    pos = start
    size = len(text)
    for _ in range(count):
        begin = pos
        if pos < size and text[pos] == '"':
            pos += 1
            while True:
                quote = text.find('"', pos)
                if quote < 0:
                    pos = size
                    break
                if text.startswith('""', quote):
                    pos = quote + 2
                    continue
                pos = quote + 1
                break
        ends = [i for i in (text.find(",", pos), text.find("\n", pos), text.find("\r", pos)) if i >= 0]
        end = min(ends) if ends else size
        fields.append((begin, end))
        if end >= size or text[end] != ",":
            pos = end
        else:
            pos = end + 1
    while len(fields) < count:  # pragma: no cover - defensive
        fields.append((pos, pos))
    return fields


def _source_lines(ext: str, text: str) -> list[str]:
    """The lines of a facts text as its loader numbers them, for its diagnostics to quote: the
    csv module ends a line at a lone CR too, the rule-language parser at any line end, JSON
    and the tab-separated loaders at LF only (a CR before it dropped)."""
    if ext == ".csv":
        return re.split(_CSV_BREAKS, text)
    if ext in (".json", ".jsonl", ".tsv", ".facts"):
        return split_lines(text)
    return split_lines(normalize_newlines(text))
