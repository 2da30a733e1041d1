"""Fact loaders and result writers.

Loading: ``load_fact_paths(paths, schema)`` for files and directories
(``.json``, ``.jsonl``, ``.csv``, ``.tsv``, ``.facts``, ``.cvg``) and
``convert_facts(facts, schema)`` for Python objects; both return
``LoadedFacts(facts, sources)`` or raise ``ConvergeError``. A ``FactText(name,
text, format)`` stands for facts given as text (standard input). Formats and the
diagnostic codes E500-E506 are documented in ``converge_rules.io.facts``.

Writing: ``write_atomic``, ``write_csv_dir``, ``format_table`` (see
``converge_rules.io.writers``; code E507 for output that cannot be written).
"""

# Names load on first use: a run that only reads facts does not import the
# writers (csv, shutil, unicodedata...), and ``converge_rules.io.database`` does
# not pull in the fact loaders.
_LAZY = {name: "converge_rules.io.facts" for name in (
    "FACT_FORMATS", "MAX_ERRORS_PER_FILE", "SUPPORTED_EXTENSIONS", "FactText", "LoadedFacts", "SourceList",
    "convert_facts", "guess_format", "load_fact_paths")}
_LAZY.update({name: "converge_rules.io.writers" for name in ("csv_text", "format_table", "write_atomic", "write_csv_dir")})


def __getattr__(name: str) -> object:
    """Import the submodule that defines ``name`` on first use (see ``_LAZY``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'converge_rules.io' has no attribute {name!r}")


__all__ = [
    "LoadedFacts",
    "SourceList",
    "load_fact_paths",
    "FactText",
    "FACT_FORMATS",
    "guess_format",
    "convert_facts",
    "SUPPORTED_EXTENSIONS",
    "MAX_ERRORS_PER_FILE",
    "write_atomic",
    "write_csv_dir",
    "format_table",
    "csv_text",
]
