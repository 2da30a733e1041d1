"""Converge Rules: a deterministic, explainable rule engine.

    import converge_rules as cr
    rules = cr.load(["loans.cvg"])
    result = rules.run(fact_files=["facts.json"])
    result.tier, result.digest, result.facts("decision")
    print(cr.render_text(result.why('decision("l1", "reject")')))
"""

from .api import Result, RuleSet, check, load, load_text
from .diagnostics import ConvergeError, Diagnostic, Span
from .compile.program import FailurePolicy
from .engine.loop import Budget, Reason, Tier
from .explain.proofs import Proof
from .explain.render import ProofNode, render_dot, render_json, render_mermaid, render_text

__version__ = "0.1.0"

__all__ = [
    "Budget", "ConvergeError", "FailurePolicy", "Diagnostic", "Proof", "ProofNode", "Reason", "Result", "RuleSet", "Span",
    "Tier", "__version__", "check", "load", "load_text", "render_dot", "render_json", "render_mermaid", "render_text",
]
