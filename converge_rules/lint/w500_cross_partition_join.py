"""W500 cross-partition join: with ``converge check --partition-by COLUMN``, a rule
joins two atoms of partitioned relations on anything but the partition column.

``converge batch --partition-by COLUMN`` splits every input relation that has
that column into one job per value, so each job sees only its own partition.
A rule body whose two partitioned atoms do not carry the same partition value
(the same variable, or the same constant, in that column) would match facts
of different partitions when run over the whole database, and so derives less
in a batch than in one run: the warning names both atoms and the column.
Only input relations that declare the column are partitioned; the lint runs
only when a partition column is given: ``--partition-by COLUMN``, or a
comment line ``# converge: partition-by=COLUMN`` in the checked file (so a
plain ``converge check`` in CI keeps checking the batch's partitioning).
"""

from __future__ import annotations

import re
from typing import Iterator

from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext

CODE = "W500"
TITLE = "rule joins partitioned relations across partitions"


def _column(ctx: LintContext, relation: str, column: str) -> int | None:
    rel = ctx.program.relations.get(relation)
    if rel is None or not rel.is_input:
        return None
    for k, c in enumerate(rel.columns):
        if c.name == column:
            return k
    return None


def _same(a: ast.Expr, b: ast.Expr) -> bool:
    if isinstance(a, ast.Var) and isinstance(b, ast.Var):
        return a.name == b.name and not a.name.startswith("_")
    if isinstance(a, ast.Const) and isinstance(b, ast.Const):
        return a.value == b.value and type(a.value) is type(b.value)
    return False


_DIRECTIVE = re.compile(r"^\s*#\s*converge:\s*partition-by\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.M)


def _declared(ctx: LintContext) -> str | None:
    """The column of a ``# converge: partition-by=COLUMN`` line in a root file (the first one),
    in the text compiled: standard input and an editor's unsaved buffer are no file on disk."""
    for path in sorted(ctx.root_files):
        match = _DIRECTIVE.search("\n".join(ctx.source_lines(path)))
        if match:
            return match.group(1)
    return None


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    column = getattr(ctx, "partition_by", None) or _declared(ctx)
    if not column:
        return
    for owner in ctx.owners:
        atoms = []
        for lit in owner.body:
            atom = lit.atom if isinstance(lit, ast.Negation) else lit
            if isinstance(atom, ast.Atom):
                k = _column(ctx, atom.relation, column)
                if k is not None and k < len(atom.args):
                    atoms.append((atom, atom.args[k]))
        for i, (first, a) in enumerate(atoms):
            for second, b in atoms[i + 1:]:
                if not _same(a, b):
                    yield ctx.warn(CODE, f"{owner.name!r} joins {first.relation} and {second.relation} without equal "
                                   f"{column!r} columns, so with --partition-by {column} it sees one partition only",
                                   second.span, f"give both atoms the same variable in column {column!r}",
                                   "or partition by another column, or run the job without partitioning")
                    break
