"""The loan example from Python: run it, read the decisions, explain one.

    python examples/loans/api.py      (from the repository root)
"""

import converge_rules as cr

rules = cr.load(["examples/loans/loans.cvg"])
result = rules.run(fact_files=["examples/loans/facts.json"])
print(result.tier, result.cycles, result.digest[:12])
print(result.facts("decision"))
print(cr.render_text(result.why('decision("l1", "reject")')))
