"""Input facts from a database: the parts every database kind shares.

A database source is a URL (``sqlite:///path.db``, ``postgresql://...``)
plus optional queries per relation (``--table REL=SQL``). Each input relation
is read from the table of the same name, or from its query; a relation with
neither a table nor a query has no facts (as a JSON file without its key).
Columns are matched by name (case-insensitively); other columns are ignored,
except ``confidence`` (a number in (0, 1]) when the relation has no column of
that name.

Reading and converting are separate steps: ``read_tables`` returns the raw
rows with a key per row (the primary key, or the rowid, or the row number of
a query), ``convert_tables`` turns them into ``LoadedFacts`` and reports every
value that does not convert as ``E502`` naming the table, key and column.
Batch partitioning (``converge batch --partition-by``) splits the raw rows in
between, so one job's bad row never stops another job.

Only read-only SELECT queries run (``E521`` otherwise), inside a read-only
transaction. Credentials come from the URL or the driver's environment
variables (``PGPASSWORD``, ``PGUSER``, ...) and are never shown: every URL
in messages, sources, traces and results is ``redact``-ed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from .._frozen import frozen
from ..diagnostics import ConvergeError, Diagnostic, Span
from ..values import ConversionError, RelationSchema, convert, type_name
from ..textsafe import escape_controls
from ._sources import SourceList, _Segment

__all__ = ["DatabaseFacts", "RawTable", "is_database_url", "redact", "read_tables", "convert_tables",
           "load_database", "check_select"]

SCHEMES = ("sqlite", "postgresql", "postgres")
_SECRET_PARAMS = {"password", "passfile", "sslpassword", "sslkey"}


def is_database_url(text: object) -> bool:
    """True for ``sqlite:///...``, ``postgresql://...`` and ``postgres://...``."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def redact(url: str) -> str:
    """The URL without its password (also a ``password=`` query parameter)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit  # here: every run with facts imports this module

    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    query = parts.query
    if query:
        pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in _SECRET_PARAMS]
        query = urlencode(pairs)
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


@frozen
class DatabaseFacts:
    """A database to read input facts from: its URL and optional queries per relation."""

    url: str
    tables: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.tables, Mapping):
            object.__setattr__(self, "tables", tuple(sorted(self.tables.items())))

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"DatabaseFacts({redact(self.url)!r}, tables={self.tables!r})"

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.lower().startswith("sqlite") else "postgres"


@dataclass
class RawTable:
    """The rows of one relation as the database returned them, with a key per row."""

    relation: str
    label: str                 # where the rows came from: the table name, or "query"
    columns: tuple[str, ...]   # names of the result's columns, as returned
    rows: list[tuple]
    keys: list[str] = field(default_factory=list)  # 'id="l1"', 'rowid=3' or 'row 3', one per row

    def column_index(self, name: str) -> int | None:
        lowered = [c.lower() for c in self.columns]
        return lowered.index(name.lower()) if name.lower() in lowered else None

    def subset(self, indexes: Sequence[int]) -> "RawTable":
        return RawTable(self.relation, self.label, self.columns, [self.rows[i] for i in indexes],
                        [self.keys[i] for i in indexes])


def db_diagnostic(code: str, message: str, where: str, notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(code, message, Span(where, 0, 0), notes=notes)


_LEADING = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/)*", re.S)


def check_select(sql: str, where: str) -> Diagnostic | None:
    """``E521`` unless the text is one SELECT (or WITH ... SELECT, or VALUES) statement."""
    body = _LEADING.sub("", sql, count=1).rstrip().rstrip(";").rstrip()
    first = body.split(None, 1)[0].lower() if body else ""
    if first not in ("select", "with", "values") or ";" in _strip_literals(body):
        return db_diagnostic("E521", "only one SELECT query may read facts", where,
                        (f"got: {sql.strip()[:80]}", "write --table REL='SELECT ... FROM ...'"))
    if first == "with" and re.search(r"\b(insert|update|delete|merge)\b", _strip_literals(body), re.I):
        return db_diagnostic("E521", "only one SELECT query may read facts (this WITH query writes)", where)
    return None


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", sql)


def read_tables(source: DatabaseFacts, schema: Mapping[str, RelationSchema]) -> dict[str, RawTable]:
    """The raw rows of every input relation (those with a table or a query); raises ConvergeError."""
    label = str(source)
    diagnostics: list[Diagnostic] = []
    queries = dict(source.tables)
    for rel, sql in source.tables:
        if rel not in schema:
            diagnostics.append(db_diagnostic("E503", f"--table names an unknown relation {rel!r}", label,
                                        ("input relations: " + ", ".join(sorted(n for n, s in schema.items() if s.is_input)),)))
        else:
            found = check_select(sql, f"{label} --table {rel}")
            if found:
                diagnostics.append(found)
    if diagnostics:
        raise ConvergeError(diagnostics)
    wanted = [n for n in sorted(schema) if schema[n].is_input or n in queries]
    if source.kind == "sqlite":
        from .sqlite import read_sqlite as reader
    else:
        from .postgres import read_postgres as reader
    return reader(source, wanted, queries)


def _to_type(value: Any, typ: str) -> Any:
    """A database value as a column type, or raise ValueError (strict: no text for numbers).

    Only what databases add is handled here (NULL, DECIMAL, blobs, 0/1 for booleans); every
    other value converts as a value from a fact file does (``values.convert``)."""
    if value is None:
        raise ValueError("NULL")
    original = value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(_show(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(_show(value))
        if typ == "int" and value == value.to_integral_value():
            return int(value)
        if typ in ("int", "float"):
            value = float(value)  # an int column takes an integral float only
    elif typ == "bool" and type(value) is int and value in (0, 1):
        return bool(value)  # SQLite has no boolean type
    try:
        return convert(value, typ)
    except ConversionError:
        raise ValueError(_show(original)) from None


def _show(value: Any) -> str:
    if isinstance(value, str):  # a database can hold any text: never show it raw
        text = '"' + escape_controls(value.replace('"', '\\"')) + '"'
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = f"a blob of {len(bytes(value))} bytes"
    else:
        text = repr(value) if not isinstance(value, (int, float, Decimal)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _KeySegment(_Segment):
    """Sources of facts read from one table: ``(URL:table[key], 0)``, one key per fact."""

    __slots__ = ("keys",)

    def __init__(self, path: str, keys: list[str]):
        super().__init__(path, len(keys))
        self.keys = keys

    def item(self, k: int) -> tuple[str, int]:
        return (f"{self.path}[{self.keys[k]}]", 0)

    def line(self, k: int) -> int:
        return 0

    def lines(self) -> Sequence[int]:
        return [0] * self.length

    def items(self) -> Iterable[tuple[str, int]]:
        return ((f"{self.path}[{key}]", 0) for key in self.keys)


def convert_tables(raw: Mapping[str, RawTable], schema: Mapping[str, RelationSchema], label: str) -> Any:
    """Raw rows to ``LoadedFacts``; every problem (missing column, bad value) is a diagnostic."""
    from .facts import LoadedFacts

    facts: dict[str, list[tuple]] = {}
    sources: dict[str, SourceList] = {}
    confidence: dict[str, dict[tuple, float]] = {}
    diagnostics: list[Diagnostic] = []
    for rel in sorted(raw):
        table = raw[rel]
        spec = schema[rel]
        where = f"{label}:{table.label}"
        idx = []
        for col in spec.columns:
            k = table.column_index(col.name)
            if k is None:
                diagnostics.append(db_diagnostic("E505", f'missing column "{col.name}" of {rel} in {table.label}', where,
                                            ("columns found: " + (", ".join(table.columns) or "none"),)))
            idx.append(k)
        if any(k is None for k in idx):
            continue
        conf_k = table.column_index("confidence") if all(c.name != "confidence" for c in spec.columns) else None
        types = spec.types
        out: list[tuple] = []
        keys: list[str] = []
        errors = 0
        plain: set[tuple] = set()  # facts some row gives without a confidence (or with 1)
        for row, key in zip(table.rows, table.keys):
            values = []
            ok = True
            for col, k, typ in zip(spec.columns, idx, types):
                value = row[k]  # type: ignore[index]
                if type_name(value) == typ and (typ != "float" or math.isfinite(value)):
                    values.append(value)
                    continue
                try:
                    values.append(_to_type(value, typ))
                except (ValueError, TypeError, OverflowError) as err:
                    ok = False
                    errors += 1
                    if errors <= 50:
                        diagnostics.append(db_diagnostic("E502", f'column "{col.name}" of {rel}: {err} is not a valid {typ}',
                                                    f"{where}[{key}]"))
            if not ok:
                continue
            fact = tuple(values)
            if conf_k is not None and row[conf_k] is not None:
                c = row[conf_k]
                if isinstance(c, bool) or not isinstance(c, (int, float, Decimal)) or not 0 < float(c) <= 1:
                    diagnostics.append(db_diagnostic("E508", f"a fact's confidence is a number in (0, 1], got {_show(c)}",
                                                f"{where}[{key}]"))
                    continue
                if float(c) < 1:
                    table_c = confidence.setdefault(rel, {})
                    table_c[fact] = max(float(c), table_c.get(fact, 0.0))
                else:
                    plain.add(fact)
            else:
                plain.add(fact)
            out.append(fact)
            keys.append(key)
        if errors > 50:
            diagnostics.append(db_diagnostic("E502", f"{errors - 50} more values of {rel} do not convert", where))
        if rel in confidence:  # a fact given both with and without a confidence has confidence 1
            for fact in plain & confidence[rel].keys():
                del confidence[rel][fact]
        facts[rel] = out
        sources[rel] = SourceList()
        sources[rel].add(_KeySegment(where, keys))
    if diagnostics:
        raise ConvergeError(diagnostics)
    return LoadedFacts(facts, sources, confidence)


def load_database(source: DatabaseFacts | str, schema: Mapping[str, RelationSchema]) -> Any:
    """Read and convert every input relation of a database; raises ConvergeError."""
    if isinstance(source, str):
        source = DatabaseFacts(source)
    return convert_tables(read_tables(source, schema), schema, str(source))


def format_key(names: Sequence[str], values: Sequence[Any]) -> str:
    """``id="l1"`` or ``a=1, b="x"`` for a row's key."""
    return ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values))
