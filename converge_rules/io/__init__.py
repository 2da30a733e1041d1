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

from .facts import (FACT_FORMATS, MAX_ERRORS_PER_FILE, SUPPORTED_EXTENSIONS, FactText, LoadedFacts, SourceList,
                    convert_facts, guess_format, load_fact_paths)
from .writers import csv_text, format_table, write_atomic, write_csv_dir

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
