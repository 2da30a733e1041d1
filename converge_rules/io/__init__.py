"""Fact loaders and result writers.

Loading: ``load_fact_paths(paths, schema)`` for files and directories
(``.json``, ``.jsonl``, ``.csv``, ``.tsv``, ``.facts``, ``.cvg``) and
``convert_facts(facts, schema)`` for Python objects; both return
``LoadedFacts(facts, sources)`` or raise ``ConvergeError``. Formats and the
diagnostic codes E500-E506 are documented in ``converge_rules.io.facts``.

Writing: ``write_atomic``, ``write_csv_dir``, ``format_table`` (see
``converge_rules.io.writers``; code E507 for output that cannot be written).
"""

from .facts import (MAX_ERRORS_PER_FILE, SUPPORTED_EXTENSIONS, LoadedFacts, SourceList, convert_facts,
                    load_fact_paths)
from .writers import csv_text, format_table, write_atomic, write_csv_dir

__all__ = [
    "LoadedFacts",
    "SourceList",
    "load_fact_paths",
    "convert_facts",
    "SUPPORTED_EXTENSIONS",
    "MAX_ERRORS_PER_FILE",
    "write_atomic",
    "write_csv_dir",
    "format_table",
    "csv_text",
]
