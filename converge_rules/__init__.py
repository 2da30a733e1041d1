"""Converge Rules: a deterministic, explainable rule engine.

    import converge_rules as cr
    rules = cr.load(["loans.cvg"])
    result = rules.run(fact_files=["facts.json"])
    result.tier, result.digest, result.facts("decision")
    print(cr.render_text(result.why('decision("l1", "reject")')))
"""

from .api import Result, RuleSet, check, load, load_sources, load_text
from .diagnostics import ConvergeError, Diagnostic, Span
from .compile.program import FailurePolicy
from .engine.loop import Budget, Reason, Tier

_LAZY = {"Record": "converge_rules.record", "RecordError": "converge_rules.record", "open_record": "converge_rules.record",
         "RECORD_FORMAT": "converge_rules.record", "read_record_key": "converge_rules.record",
         "Session": "converge_rules.session", "Decision": "converge_rules.session",
         "Proof": "converge_rules.explain.proofs", "ProofNode": "converge_rules.explain.render",
         "render_dot": "converge_rules.explain.render", "render_json": "converge_rules.explain.render",
         "render_mermaid": "converge_rules.explain.render", "render_text": "converge_rules.explain.render"}


def __getattr__(name: str) -> object:
    """Explanations load on first use, so a plain run starts faster."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'converge_rules' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "Budget", "ConvergeError", "Decision", "Session", "RECORD_FORMAT", "Record", "RecordError", "open_record", "read_record_key", "FailurePolicy", "Diagnostic", "Proof", "ProofNode", "Reason", "Result", "RuleSet", "Span",
    "Tier", "__version__", "check", "load", "load_sources", "load_text", "render_dot", "render_json", "render_mermaid", "render_text",
]
