"""Converge Rules: a deterministic, explainable rule engine.

    import converge_rules as cr
    rules = cr.load(["loans.cvg"])
    result = rules.run(fact_files=["facts.json"])
    result.tier, result.digest, result.facts("decision")
    print(cr.render_text(result.why('decision("l1", "reject")')))
"""

# Every public name is imported on first use: ``converge --version`` and the CLI's
# other modules (``converge_rules.cli``, ``converge_rules.values``...) then start
# without loading the compiler and the engine. ``cr.load`` etc. work as before.
_LAZY = {"Result": "converge_rules.api", "RuleSet": "converge_rules.api", "check": "converge_rules.api",
         "load": "converge_rules.api", "load_sources": "converge_rules.api", "load_text": "converge_rules.api",
         "ConvergeError": "converge_rules.diagnostics", "Diagnostic": "converge_rules.diagnostics",
         "Span": "converge_rules.diagnostics", "FailurePolicy": "converge_rules.compile.program",
         "Budget": "converge_rules.engine.loop", "Reason": "converge_rules.engine.loop", "Tier": "converge_rules.engine.loop",
         "Record": "converge_rules.record", "RecordError": "converge_rules.record", "open_record": "converge_rules.record",
         "RECORD_FORMAT": "converge_rules.record", "read_record_key": "converge_rules.record",
         "Session": "converge_rules.session", "Decision": "converge_rules.session",
         "Proof": "converge_rules.explain.proofs", "ProofNode": "converge_rules.explain.render",
         "render_dot": "converge_rules.explain.render", "render_json": "converge_rules.explain.render",
         "render_mermaid": "converge_rules.explain.render", "render_text": "converge_rules.explain.render"}


def __getattr__(name: str) -> object:
    """Public names load on first use (see ``_LAZY``), so start-up stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'converge_rules' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "Budget", "ConvergeError", "Decision", "Session", "RECORD_FORMAT", "Record", "RecordError", "open_record", "read_record_key", "FailurePolicy", "Diagnostic", "Proof", "ProofNode", "Reason", "Result", "RuleSet", "Span",
    "Tier", "__version__", "check", "load", "load_sources", "load_text", "render_dot", "render_json", "render_mermaid", "render_text",
]
