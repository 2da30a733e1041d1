"""A job's result as one self-contained HTML page (``converge report``).

``render_report(result)`` returns the page as a string: the outcome (tier,
reasons, budgets used), a timeline of the run per cycle (agents run, facts
merged, failures, tool calls), the dependency graph as an inline SVG laid out
here, and a searchable table of facts per relation where every derived fact
has a collapsible proof tree (nested ``<details>``). The result must come from
a run with ``trace=True`` for the timeline.

The page needs no network: CSS and JavaScript are inline, and a
Content-Security-Policy allows only these two (by hash), so a browser refuses
anything else. Every piece of user text (facts, names, messages, paths) goes
through ``html.escape``. The output is a function of the job alone: the same
job gives the same bytes (no timestamps, every list in a fixed order).

Links: each shown fact's table row has the id ``fact_anchor(relation, fact)``
(``fact-decision-l1-reject``; ``fact-REL~HASH`` when a value is not a plain
word or number), so ``report.html#fact-decision-l1-reject`` opens that fact
with its proof; relations are ``#rel-NAME`` and cycles ``#cycle-N``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..values import dumps_json, int_to_str
from ..values import format_fact, format_value

__all__ = ["render_report", "fact_anchor", "proof_id", "DEFAULT_DEPTH", "DEFAULT_MAX_PROOFS", "DEFAULT_MAX_ROWS"]

DEFAULT_DEPTH = 12          # proof tree levels rendered per fact
DEFAULT_MAX_PROOFS = 2000   # facts that get a rendered proof tree
DEFAULT_MAX_ROWS = 10000    # fact rows in the table (all relations together)
MAX_TREE_NODES = 300        # nodes rendered in one proof tree
MAX_LINKS = 12              # fact links per agent and relation in one cycle of the timeline
MAX_EVENTS = 50             # tool calls, superseded or dominated facts listed per cycle
MAX_CYCLES = 400            # cycles in the timeline: the first and the last half of this when there are more

_TIER_NOTE = {"converged": "reached a fixed point; every fact is proven",
              "degraded": "reached a fixed point, but an agent was skipped after failing",
              "bounded": "stopped by a budget; every fact shown is still proven",
              "failed": "an invariant, acceptance check or agent failed"}


def _e(value: Any) -> str:
    # an int of any size (a budget limit a request may give), which str() refuses past 4300 digits
    return html.escape(int_to_str(value) if type(value) is int else str(value), quote=True)


# ---------------------------------------------------------------- anchors

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_INT = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+\Z")


def _slug(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int_to_str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if _FLOAT.match(text) else None
    if isinstance(value, str) and _WORD.match(value) and value not in ("true", "false"):
        return value
    return None


def fact_anchor(relation: str, fact: Sequence[Any]) -> str:
    """The id of a fact's row: ``fact-REL-V1-V2...`` when every value is a plain word
    (letters, digits, ``_``, ``.``; not starting with a digit) or number, else
    ``fact-REL~`` and 16 hex digits of the SHA-256 of the fact's text. The word form
    is injective (a word never holds ``-`` and starts unlike a number) and never
    holds ``~``, so distinct facts get distinct ids."""
    parts = [_slug(v) for v in fact]
    if all(p is not None for p in parts):
        anchor = "-".join(["fact", relation, *parts])  # type: ignore[list-item]
        if len(anchor) <= 100:
            return anchor
    digest = hashlib.sha256(format_fact(relation, fact).encode("utf-8")).hexdigest()[:16]
    return f"fact-{relation}~{digest}"


def proof_id(relation: str, fact: Sequence[Any]) -> str:
    """The id of a fact's proof tree element (``proof-`` instead of ``fact-``)."""
    return "proof-" + fact_anchor(relation, fact)[len("fact-"):]


# ---------------------------------------------------------------- page parts

_CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d8dde6;--bg:#fff;--soft:#f5f7fa;--accent:#2856b6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header.top{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--soft)}
header.top h1{margin:0 0 4px;font-size:20px}
nav{margin-top:6px}nav a{margin-right:14px}
main{padding:8px 24px 40px;max-width:1400px}
h2{margin:28px 0 10px;font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{margin:18px 0 6px;font-size:15px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono,td.v,.pn,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--soft);padding:8px;border-radius:4px;overflow:auto;margin:4px 0}
table{border-collapse:collapse;margin:4px 0 8px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num{text-align:right}
.muted{color:var(--muted)}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;border-radius:4px;margin:8px 0}
.tier{display:inline-block;padding:2px 12px;border-radius:12px;font-weight:700;color:#fff;letter-spacing:.03em}
.tier-converged{background:#1e8e3e}.tier-degraded{background:#c77c02}.tier-bounded{background:#d35400}.tier-failed{background:#c5221f}
.kind{display:inline-block;padding:0 6px;border-radius:3px;background:#eef1f6;font-family:ui-monospace,monospace;font-size:12px}
.chip{display:inline-block;padding:0 6px;margin:1px 2px;border-radius:10px;background:#eef1f6;font-family:ui-monospace,monospace;font-size:12px}
.chip.deferred{background:#fff1d6}.chip.retired{background:#f0f0f0;color:var(--muted)}
.bad{color:#c5221f;font-weight:600}.ok{color:#1e8e3e}.warn{color:#c77c02}
section.cycle{border-left:3px solid var(--line);padding:2px 0 2px 12px;margin:10px 0}
section.cycle.has-failure{border-left-color:#c5221f}
section.cycle h3{margin:4px 0}
.graph{overflow:auto;border:1px solid var(--line);border-radius:4px;background:#fff;padding:4px}
.legend span{margin-right:16px}
.filterbar{position:sticky;top:0;background:var(--bg);padding:8px 0;border-bottom:1px solid var(--line);z-index:1}
.filterbar input{font-size:14px;padding:4px 8px;width:28em;max-width:100%}
.filterbar button{margin-left:6px}
tr.fact:target{background:#fff3b0}
tr.fact:target td{border-color:#e0c200}
details.proof>summary{cursor:pointer;color:var(--accent)}
.pn{margin:1px 0 1px 0}
.pb{margin-left:18px;border-left:1px dotted #b8c0cc;padding-left:8px}
.pn summary{cursor:pointer}
.pn .meta{color:var(--muted);font-family:system-ui,sans-serif;font-size:12px}
.pn.input>.ft,.pn.input>summary>.ft{color:#174ea6}
.pn .bind,.pn .cond,.pn .neg,.pn .agg{color:#3c4658}
.pn .neg{color:#8a3b12}
.pn .cut{color:var(--muted);font-style:italic}
ul.links{margin:2px 0;padding-left:18px}
section.relation.empty-match table{display:none}
"""

_JS = """
(function () {
  "use strict";
  var box = document.getElementById("filter-box");
  var count = document.getElementById("filter-count");
  var sections = document.querySelectorAll("section.relation");
  function apply() {
    var q = box ? box.value.trim().toLowerCase() : "";
    var shown = 0, total = 0;
    for (var i = 0; i < sections.length; i++) {
      var rows = sections[i].querySelectorAll("tr.fact");
      var n = 0;
      for (var j = 0; j < rows.length; j++) {
        var key = rows[j].getAttribute("data-k") || "";
        var hit = !q || key.indexOf(q) !== -1;
        rows[j].hidden = !hit;
        if (hit) { n++; }
      }
      shown += n; total += rows.length;
      var label = sections[i].querySelector(".shown");
      if (label) { label.textContent = q ? n + " of " + rows.length + " shown" : ""; }
      sections[i].classList.toggle("empty-match", q !== "" && n === 0);
    }
    if (count) { count.textContent = q ? shown + " of " + total + " facts match" : total + " facts"; }
  }
  function setAll(open) {
    var all = document.querySelectorAll("details.proof, details.pn");
    for (var i = 0; i < all.length; i++) { all[i].open = open; }
  }
  function reveal() {
    var id = "";
    try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (err) { id = ""; }
    if (!id) { return; }
    var el = document.getElementById(id);
    if (!el) { return; }
    if (el.hidden && box) { box.value = ""; apply(); }
    var proof = el.classList.contains("fact") ? el.querySelector("details.proof") : null;
    if (proof) { proof.open = true; }
    for (var p = el.parentElement; p; p = p.parentElement) {
      if (p.tagName === "DETAILS") { p.open = true; }
    }
    el.scrollIntoView();
  }
  if (box) { box.addEventListener("input", apply); }
  var expand = document.getElementById("expand-all");
  var collapse = document.getElementById("collapse-all");
  if (expand) { expand.addEventListener("click", function () { setAll(true); }); }
  if (collapse) { collapse.addEventListener("click", function () { setAll(false); }); }
  window.addEventListener("hashchange", reveal);
  apply();
  reveal();
  document.documentElement.setAttribute("data-report-ready", "1");
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@dataclass
class _Row:
    relation: str
    fact: tuple
    anchor: str
    proof: Any
    confidence: float = 1.0


@dataclass
class _Page:
    result: Any
    relations: list[str]
    depth: int
    max_proofs: int
    max_rows: int
    rows: dict[str, list[_Row]] = field(default_factory=dict)
    shown: set[tuple[str, tuple]] = field(default_factory=set)
    capped_rows: dict[str, int] = field(default_factory=dict)   # relation -> facts not shown
    derived_by: dict[tuple[int, str | None, str], list[_Row]] = field(default_factory=dict)
    trees: int = 0
    trees_skipped: int = 0


def render_report(result: Any, relations: Sequence[str] | None = None, *, depth: int = DEFAULT_DEPTH,
                  max_proofs: int = DEFAULT_MAX_PROOFS, max_rows: int = DEFAULT_MAX_ROWS,
                  title: str | None = None) -> str:
    """The HTML report of a result (run it with ``trace=True`` for the timeline).

    ``relations`` limits the fact table to these relations (default: all);
    ``depth`` caps each proof tree's levels, ``max_proofs`` the number of facts
    with a rendered proof tree and ``max_rows`` the fact rows; the page says
    when a cap was reached."""
    names = list(dict.fromkeys(relations)) if relations else result.relations()  # each once: ids stay unique
    page = _Page(result, names, depth, max_proofs, max_rows)
    _collect_rows(page)
    from .. import __version__

    tier = result.tier.value
    heading = title or "Converge report"
    css = "\n" + _CSS.strip() + "\n"  # the exact text of the <style> and <script> elements: the CSP hashes it
    js = "\n" + _JS.strip() + "\n"
    csp = f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; img-src data:; base-uri 'none'; form-action 'none'"
    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    w(f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_e(csp)}\">\n")
    w("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
    w(f"<meta name=\"generator\" content=\"converge {_e(__version__)}\">\n")
    w(f"<title>{_e(heading)}: {_e(tier)}</title>\n<style>{css}</style>\n</head>\n<body>\n")
    w(f"<header class=\"top\"><h1>{_e(heading)}</h1>\n")
    job = getattr(result, "job", {}) or {}
    files = [("rules", p) for p in job.get("rules", [])] + [("facts", p) for p in job.get("facts", [])]
    if files:
        w("<div class=\"muted\">" + " · ".join(f"{k} <code>{_e(p)}</code>" for k, p in files) + "</div>\n")
    w("<nav><a href=\"#outcome\">Outcome</a><a href=\"#timeline\">Timeline</a><a href=\"#graph\">Dependency graph</a>"
      "<a href=\"#facts\">Facts</a></nav></header>\n<main>\n")
    _outcome(page, w)
    _timeline(page, w)
    _graph(page, w)
    _facts(page, w)
    w(f"</main>\n<script>{js}</script>\n</body>\n</html>\n")
    return "".join(out)


def _collect_rows(page: _Page) -> None:
    result = page.result
    budget = page.max_rows
    for name in page.relations:
        facts = result.facts(name)
        weak = dict(result.weak_facts(name))
        take = facts[:max(budget, 0)]
        budget -= len(take)
        if len(take) < len(facts):
            page.capped_rows[name] = len(facts) - len(take)
        rows = []
        for fact in take:
            proof = result.proof(name, fact)
            row = _Row(name, fact, fact_anchor(name, fact), proof, weak.get(fact, 1.0))
            rows.append(row)
            page.shown.add((name, fact))
            if proof is not None and not proof.is_input:
                page.derived_by.setdefault((proof.cycle, proof.agent, name), []).append(row)
        page.rows[name] = rows


# ---------------------------------------------------------------- outcome

def _outcome(page: _Page, w: Any) -> None:
    r = page.result
    tier = r.tier.value
    w("<section id=\"outcome\">\n<h2>Outcome</h2>\n")
    w(f"<p><span class=\"tier tier-{_e(tier)}\" id=\"tier\">{_e(tier)}</span> <span class=\"muted\">{_e(_TIER_NOTE.get(tier, ''))}</span></p>\n")
    w("<table class=\"summary\">\n")
    w(f"<tr><th>cycles</th><td class=\"num\">{r.cycles}</td></tr>\n")
    w(f"<tr><th>facts</th><td class=\"num\">{r.total_facts}</td></tr>\n")
    w(f"<tr><th>relations</th><td class=\"num\">{len(r.relations())}</td></tr>\n")
    w(f"<tr><th>digest</th><td><code>{_e(r.digest)}</code></td></tr>\n</table>\n")
    # reasons
    if not r.reasons:
        w("<h3>Reasons</h3>\n<p class=\"muted\">none: the job converged.</p>\n")
    else:
        w("<h3>Reasons</h3>\n<ol class=\"reasons\">\n")
        for reason in r.reasons:
            w(f"<li><span class=\"kind\">{_e(reason.kind)}</span> {_e(reason.message)}")
            _reason_details(reason.details, w)
            w("</li>\n")
        w("</ol>\n")
    # budgets
    limits = r.budget.to_json()
    cycles = [e for e in (r.trace or []) if e.get("event") == "cycle"]
    widest = max((len(e.get("eligible", [])) for e in cycles), default=0)
    deferred = sum(len(e.get("deferred", [])) for e in cycles)
    dropped = [reason.details.get("dropped") for reason in r.reasons if reason.details.get("budget") == "min_confidence"]
    used = {
        "max_cycles": f"{r.cycles} cycle{'s' if r.cycles != 1 else ''}",
        "max_facts": f"{r.total_facts} fact{'s' if r.total_facts != 1 else ''}",
        "max_agents_per_cycle": f"at most {widest} agent(s) in a cycle" + (f", {deferred} deferral(s)" if deferred else ""),
        "max_steps": f"{r.steps} rule firings" if limits.get("max_steps") is not None else "not counted (no limit set)",
        "min_confidence": (f"{dropped[0]} derived fact(s) dropped" if dropped else "no fact dropped")
        if limits.get("min_confidence") is not None else "no limit set",
        "max_bytes": "not recorded" if r.bytes_counted is None else f"{r.bytes_counted} bytes counted",
        "timeout": "wall clock" if limits.get("timeout") is not None else "no limit set",
    }
    hit = {reason.details.get("budget") for reason in r.reasons if reason.kind == "budget"}
    w("<h3>Budgets</h3>\n<table class=\"budgets\">\n<tr><th>budget</th><th>limit</th><th>used</th></tr>\n")
    for name in limits:
        limit = limits[name]
        cls = " class=\"bad\"" if name in hit else ""
        w(f"<tr><td><code>{_e(name)}</code></td><td class=\"num\">{_e('none' if limit is None else limit)}</td>"
          f"<td{cls}>{_e(used.get(name, ''))}{' (exhausted)' if name in hit else ''}</td></tr>\n")
    w("</table>\n")
    # counts per relation
    w("<h3>Relations</h3>\n<table class=\"counts\">\n<tr><th>relation</th><th>kind</th><th>facts</th></tr>\n")
    for name in r.relations():
        rel = r.program.relations.get(name)
        kind = "input" if rel is not None and rel.is_input else "derived"
        link = f"<a href=\"#rel-{_e(name)}\">{_e(name)}</a>" if name in page.rows else _e(name)
        w(f"<tr><td>{link}</td><td>{kind}</td><td class=\"num\">{r.count(name)}</td></tr>\n")
    w("</table>\n</section>\n")


def _reason_details(details: dict[str, Any], w: Any) -> None:
    if not details:
        return
    violations = details.get("violations")
    rest = {k: v for k, v in details.items() if k != "violations"}
    if rest:
        w("<table class=\"details\">")
        for key in sorted(rest):
            value = rest[key]
            text = value if isinstance(value, str) else dumps_json(value, ensure_ascii=False, sort_keys=True)
            w(f"<tr><th>{_e(key)}</th><td class=\"mono\">{_e(text)}</td></tr>")
        w("</table>")
    if violations:
        w("<ul class=\"violations\">")
        for v in violations:
            w(f"<li><code>{_e(v.get('invariant', ''))}</code>")
            if v.get("message"):
                w(f" {_e(v['message'])}")
            w("<ul>")
            for match in v.get("matches", []):
                facts = ", ".join(match.get("facts", [])) or "(no facts)"
                binding = ", ".join(f"{k} = {dumps_json(val, ensure_ascii=False)}" for k, val in match.get("bindings", {}).items())
                with_text = f" <span class=\"muted\">with {_e(binding)}</span>" if binding else ""
                w(f"<li class=\"mono\">{_e(facts)}{with_text}</li>")
            w("</ul></li>")
        w("</ul>")


# ---------------------------------------------------------------- timeline

@dataclass
class _AgentRun:
    name: str
    attempts: int = 0
    status: str = ""
    computed: int | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)


def _timeline(page: _Page, w: Any) -> None:
    r = page.result
    trace = r.trace
    w("<section id=\"timeline\">\n<h2>Timeline</h2>\n")
    if trace is None:
        w("<p class=\"muted\">No trace: run the job with <code>trace=True</code> to see the timeline.</p>\n</section>\n")
        return
    events = [e for e in trace if e.get("event") not in ("header", "outcome")]
    setup = [e for e in events if "cycle" not in e and e.get("event") != "acceptance"]
    end = [e for e in events if e.get("event") == "acceptance"]
    by_cycle: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if "cycle" in e:
            by_cycle.setdefault(int(e["cycle"]), []).append(e)
    for e in setup:
        if e.get("event") == "prune":
            w(f"<p>Pruned by goal (never run): {_chips(e.get('agents', []), 'retired')}</p>\n")
        else:
            w(f"<p class=\"mono\">{_e(dumps_json(e, ensure_ascii=False))}</p>\n")
    # cycle 0: the inputs
    w("<section class=\"cycle\" id=\"cycle-0\">\n<h3>Cycle 0: input facts</h3>\n")
    loaded = []
    given: dict[str, set[tuple]] = {}
    for f in r.program.facts:
        given.setdefault(f.relation, set()).add(f.values)
    for name in r.relations():
        n = _input_count(r, name, given.get(name, set()))
        if n:
            loaded.append(f"<a href=\"#rel-{_e(name)}\">{_e(name)}</a> {n}" if name in page.rows else f"{_e(name)} {n}")
    loaded_text = ", ".join(loaded) if loaded else "<span class=\"muted\">no input facts</span>"
    w(f"<p>Loaded: {loaded_text}</p>\n")
    _cycle_misc(by_cycle.get(0, []), w)
    w("</section>\n")
    cycles = sorted(c for c in by_cycle if c > 0)
    if len(cycles) > MAX_CYCLES:
        half = MAX_CYCLES // 2
        for cycle in cycles[:half]:
            _cycle(page, cycle, by_cycle[cycle], w)
        w(f"<p class=\"note\" id=\"cycles-capped\">{len(cycles) - 2 * half} cycles not shown (cycles {cycles[half]} to "
          f"{cycles[-half - 1]}); the timeline shows the first and the last {half}. "
          "<code>converge run --trace FILE</code> records every event.</p>\n")
        for cycle in cycles[-half:]:
            _cycle(page, cycle, by_cycle[cycle], w)
    else:
        for cycle in cycles:
            _cycle(page, cycle, by_cycle[cycle], w)
    if end:
        w("<section class=\"cycle\" id=\"fixed-point\">\n<h3>At the fixed point: acceptance checks</h3>\n<ul>\n")
        for e in end:
            n = e.get("violations", 0)
            status = f"<span class=\"bad\">{n} violation(s)</span>" if n else "<span class=\"ok\">holds</span>"
            w(f"<li><code>{_e(e.get('invariant', ''))}</code>: {status}</li>\n")
        w("</ul>\n</section>\n")
    w("</section>\n")


def _input_count(result: Any, name: str, given: set[tuple]) -> int:
    """Input facts of a relation: all of an input relation, else those its rule files state and that still hold."""
    rel = result.program.relations.get(name)
    if rel is None:
        return 0
    if rel.is_input:
        return result.count(name)
    return sum(1 for v in given if result.holds(name, v))


def _chips(names: Iterable[str], cls: str = "") -> str:
    klass = f"chip {cls}".strip()
    return "".join(f"<span class=\"{klass}\">{_e(n)}</span>" for n in names) or "<span class=\"muted\">none</span>"


def _cycle(page: _Page, cycle: int, events: list[dict[str, Any]], w: Any) -> None:
    runs: dict[str, _AgentRun] = {}
    unattributed: list[dict[str, Any]] = []
    eligible: list[str] = []
    deferred: list[str] = []
    failed = False

    def run_of(name: str) -> _AgentRun:
        if name not in runs:
            runs[name] = _AgentRun(name)
        return runs[name]

    for e in events:
        kind = e.get("event")
        if kind == "cycle":
            eligible, deferred = list(e.get("eligible", [])), list(e.get("deferred", []))
        elif kind == "execute":
            run = run_of(e["agent"])
            run.attempts = max(run.attempts, int(e.get("attempt", 1)))
            run.status = e.get("status", "")
            if "facts" in e:
                run.computed = e["facts"]
        elif kind == "failure":
            run = run_of(e["agent"])
            run.attempts = max(run.attempts, int(e.get("attempt", 1)))
            run.failures.append(e)
            run.status = "failed"
            failed = True
        elif kind == "retry":
            run_of(e["agent"]).status = "retrying"
        elif kind == "skip":
            run_of(e["agent"]).status = "skipped"
        elif kind == "merge":
            if e.get("agent") is None:
                unattributed.append(e)
            else:
                run_of(e["agent"]).merges.append(e)
    for name in eligible:  # an eligible agent without events (the cycle stopped first)
        run_of(name)
    order = {n: i for i, n in enumerate(eligible)}
    ordered = sorted(runs.values(), key=lambda a: (order.get(a.name, len(order)), a.name))
    cls = "cycle has-failure" if failed else "cycle"
    w(f"<section class=\"{cls}\" id=\"cycle-{cycle}\">\n<h3>Cycle {cycle}</h3>\n")
    w(f"<p>Eligible: {_chips(eligible)}")
    if deferred:
        w(f" · deferred by <code>max_agents_per_cycle</code>: {_chips(deferred, 'deferred')}")
    w("</p>\n")
    if ordered:
        w("<table class=\"runs\">\n<tr><th>agent</th><th>attempts</th><th>status</th><th>computed</th><th>merged, failures</th></tr>\n")
        for run in ordered:
            status = run.status or "not run"
            scls = {"ok": "ok", "failed": "bad", "skipped": "warn", "retrying": "warn"}.get(status, "muted")
            w(f"<tr><td><code>{_e(run.name)}</code></td><td class=\"num\">{run.attempts or ''}</td>"
              f"<td class=\"{scls}\">{_e(status)}</td><td class=\"num\">{'' if run.computed is None else run.computed}</td><td>")
            if run.merges:
                w("".join(_merge_cell(page, cycle, run.name, m) for m in run.merges))
            for f in run.failures:
                w(f"<div class=\"bad\">attempt {_e(f.get('attempt', ''))}: {_e(f.get('error', ''))} "
                  f"<span class=\"muted\">at {_e(f.get('span', ''))}</span></div>")
            w("</td></tr>\n")
        w("</table>\n")
    if unattributed:
        w("<div>Merged (facts with a confidence are merged for all agents together):</div>\n")
        w("".join(_merge_cell(page, cycle, None, m) for m in unattributed) + "\n")
    if any(e.get("event") == "invariants" and e.get("violations") for e in events):
        w("<p class=\"bad\">An invariant failed: the facts merged in this cycle were rolled back.</p>\n")
    _cycle_misc(events, w)
    w("</section>\n")


def _merge_cell(page: _Page, cycle: int, agent: str | None, m: dict[str, Any]) -> str:
    rel = m.get("relation", "")
    new = int(m.get("new", 0))
    extra = ", ".join(f"{m[k]} {k}" for k in ("duplicate", "dominated", "superseded", "dropped") if m.get(k))
    label = f"+{new} <code>{_e(rel)}</code>" + (f" <span class=\"muted\">({_e(extra)})</span>" if extra else "")
    if agent is None:
        rows = [row for (c, _a, rname), rs in page.derived_by.items() if c == cycle and rname == rel for row in rs]
        rows.sort(key=lambda row: row.fact)
    else:
        rows = page.derived_by.get((cycle, agent, rel), [])
    if not rows or not new:
        return f"<div>{label}</div>"
    links = "".join(f"<li><a href=\"#{_e(row.anchor)}\">{_e(format_fact(rel, row.fact))}</a></li>" for row in rows[:MAX_LINKS])
    more = len(rows) - MAX_LINKS
    if more > 0:
        links += f"<li><a href=\"#rel-{_e(rel)}\">and {more} more in {_e(rel)}</a></li>"
    return f"<details class=\"derived\"><summary>{label}</summary><ul class=\"links\">{links}</ul></details>"


def _cycle_misc(events: list[dict[str, Any]], w: Any) -> None:
    tools = [e for e in events if e.get("event") == "tool"]
    replaced = [e for e in events if e.get("event") in ("superseded", "dominated")]
    better = [e for e in events if e.get("event") == "confidence"]
    if tools:
        errors = sum(1 for e in tools if "error" in e)
        w(f"<details class=\"tools\"><summary>{len(tools)} tool call(s)"
          + (f", <span class=\"bad\">{errors} failed</span>" if errors else "") + "</summary>\n<table>\n")
        for e in tools[:MAX_EVENTS]:
            call = f"@{e.get('tool', '')}(" + ", ".join(dumps_json(a, ensure_ascii=False) for a in e.get("args", [])) + ")"
            if "error" in e:
                outcome = f"<td class=\"bad\">{_e(e['error'])}</td>"
            else:
                outcome = f"<td class=\"mono\">{_e(dumps_json(e.get('result'), ensure_ascii=False))}</td>"
            w(f"<tr><td class=\"mono\">{_e(call)}</td>{outcome}</tr>\n")
        if len(tools) > MAX_EVENTS:
            w(f"<tr><td colspan=\"2\" class=\"muted\">and {len(tools) - MAX_EVENTS} more</td></tr>\n")
        w("</table></details>\n")
    if replaced:
        w(f"<details class=\"replaced\"><summary>{len(replaced)} fact(s) superseded or dominated (keyed relations)</summary><ul>\n")
        for e in replaced[:MAX_EVENTS]:
            rel = e.get("relation", "")
            fact = format_fact(rel, e.get("fact", []))
            if e.get("event") == "superseded":
                w(f"<li class=\"mono\">{_e(fact)} superseded by {_e(format_fact(rel, e.get('by', [])))}</li>\n")
            else:
                w(f"<li class=\"mono\">{_e(fact)} dominated by {_e(format_fact(rel, e.get('kept', [])))}</li>\n")
        if len(replaced) > MAX_EVENTS:
            w(f"<li class=\"muted\">and {len(replaced) - MAX_EVENTS} more</li>\n")
        w("</ul></details>\n")
    if better:
        w(f"<details class=\"confidence\"><summary>{len(better)} fact(s) proven with a higher confidence</summary><ul>\n")
        for e in better[:MAX_EVENTS]:
            w(f"<li class=\"mono\">{_e(format_fact(e.get('relation', ''), e.get('fact', [])))} now {_e(e.get('confidence'))}</li>\n")
        w("</ul></details>\n")
    for e in events:
        kind = e.get("event")
        if kind == "invariants":
            n = e.get("violations", 0)
            status = f"<span class=\"bad\">{n} violation(s)</span>" if n else "<span class=\"ok\">hold</span>"
            w(f"<p>Invariants {_chips(e.get('checked', []))}: {status}</p>\n")
        elif kind == "retire":
            w(f"<p>Retired (a positive input is complete and empty): {_chips(e.get('agents', []), 'retired')}</p>\n")


# ---------------------------------------------------------------- graph

_EDGE_STYLE = {
    "emit": ("#4d5566", "", "ah-emit"),
    "positive": ("#8a93a3", "", "ah-pos"),
    "negative": ("#c5221f", " stroke-dasharray=\"6 4\"", "ah-neg"),
    "aggregate": ("#2856b6", " stroke-dasharray=\"2 3\"", "ah-agg"),
}
_CHAR_W, _NODE_H, _ROW_H, _COL_GAP, _PAD = 7.3, 24, 38, 56, 16


def _graph(page: _Page, w: Any) -> None:
    w("<section id=\"graph\">\n<h2>Dependency graph</h2>\n")
    try:
        svg = render_graph_svg(page.result.program, set(page.rows))
    except Exception as err:  # pragma: no cover - a graph that cannot be laid out must not lose the report
        w(f"<p class=\"bad\">The graph could not be drawn: {_e(type(err).__name__)}: {_e(err)}</p>\n</section>\n")
        return
    w("<p class=\"legend muted\"><span>strata are columns, left to right</span><span>boxes: relations (filled: input)</span>"
      "<span>rounded: agents</span><span>grey: reads</span><span>dark: emits</span>"
      "<span class=\"bad\">dashed red: <code>not</code></span><span>dotted blue: aggregate</span></p>\n")
    w(f"<div class=\"graph\">\n{svg}</div>\n</section>\n")


def _fmt(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def render_graph_svg(program: Any, linked: set[str] | None = None) -> str:
    """The dependency graph as an SVG element: one column band per stratum (from
    ``stratify``), inside a band one column per layer (longest path over the
    graph with cycles broken by a depth-first search), rows ordered by the mean
    row of their predecessors. Deterministic for a program."""
    from ..compile.graph import build_graph, stratify

    g = build_graph(program)
    strata, _diags = stratify(program)
    stratum_of = dict(strata.stratum_of) if strata is not None else {}

    def stratum(node: str) -> int:
        data = g.nodes[node]
        if data["kind"] == "relation":
            return stratum_of.get(data["name"], 0)
        heads = [stratum_of.get(g.nodes[v]["name"], 0) for v in g.successors(node)]
        return min(heads, default=0)

    def key(node: str) -> tuple[int, str, int]:
        kind, _, rest = node.partition(":")
        return (0, rest, 0) if kind == "rel" else (1, "", int(rest))

    nodes = sorted(g.nodes, key=key)
    succ = {n: sorted(g.successors(n), key=key) for n in nodes}
    # break cycles: depth-first from nodes without predecessors, then the rest, in node order
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    starts = [n for n in nodes if g.in_degree(n) == 0] + nodes
    for start in starts:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            if i < len(succ[node]):
                stack[-1] = (node, i + 1)
                nxt = succ[node][i]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    forward = [(u, v) for u in nodes for v in succ[u] if (u, v) not in back]
    s_of = {n: stratum(n) for n in nodes}
    # layers inside each stratum: longest path over forward edges between nodes of that stratum
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for u, v in forward:
        if s_of[u] == s_of[v]:
            preds[v].append(u)
    layer: dict[str, int] = {}

    def layer_of(n: str) -> int:
        todo = [n]
        while todo:
            top = todo[-1]
            if top in layer:
                todo.pop()
                continue
            missing = [p for p in preds[top] if p not in layer]
            if missing:
                todo.extend(missing)
                continue
            layer[top] = max((layer[p] + 1 for p in preds[top]), default=0)
            todo.pop()
        return layer[n]

    for n in nodes:
        layer_of(n)
    n_strata = max(s_of.values(), default=-1) + 1
    width_of = [max((layer[n] for n in nodes if s_of[n] == s), default=-1) + 1 for s in range(n_strata)]
    offset, total = [], 0
    for s in range(n_strata):
        offset.append(total)
        total += max(width_of[s], 1)
    col = {n: offset[s_of[n]] + layer[n] for n in nodes}
    columns: list[list[str]] = [[] for _ in range(total)]
    for n in nodes:
        columns[col[n]].append(n)
    # order rows: barycentre of predecessors (forward sweep), then of successors (backward sweep)
    pos: dict[str, float] = {}
    for c in columns:
        for i, n in enumerate(c):
            pos[n] = float(i)
    all_preds: dict[str, list[str]] = {n: [] for n in nodes}
    for u, v in forward:
        all_preds[v].append(u)
    all_succ: dict[str, list[str]] = {n: [] for n in nodes}
    for u, v in forward:
        all_succ[u].append(v)
    for sweep, neighbours, seq in ((0, all_preds, range(total)), (1, all_succ, range(total - 1, -1, -1)),
                                   (2, all_preds, range(total))):
        for c in seq:
            def bary(n: str) -> tuple[float, tuple[int, str, int]]:
                ns = [pos[m] for m in neighbours[n] if col[m] != col[n]]
                return (sum(ns) / len(ns) if ns else pos[n], key(n))
            columns[c].sort(key=bary)
            for i, n in enumerate(columns[c]):
                pos[n] = float(i)
    # geometry
    label = {n: g.nodes[n]["name"] for n in nodes}
    node_w = {n: len(label[n]) * _CHAR_W + 20 for n in nodes}
    col_w = [max((node_w[n] for n in columns[c]), default=40.0) for c in range(total)]
    top = 30.0
    rows_max = max((len(c) for c in columns), default=0)
    col_x: list[float] = []
    x = _PAD
    for c in range(total):
        if c and any(offset[s] == c for s in range(n_strata)):
            x += _PAD  # a little more room between bands
        col_x.append(x)
        x += col_w[c] + _COL_GAP
    width = max(x - _COL_GAP + _PAD, 120.0)
    height = top + rows_max * _ROW_H + 40
    cx = {n: col_x[col[n]] + (col_w[col[n]] - node_w[n]) / 2 for n in nodes}
    cy = {n: top + pos[n] * _ROW_H + 6 for n in nodes}
    out: list[str] = []
    o = out.append
    o(f"<svg class=\"depgraph\" role=\"img\" aria-label=\"dependency graph\" "
      f"width=\"{_fmt(width)}\" height=\"{_fmt(height)}\" viewBox=\"0 0 {_fmt(width)} {_fmt(height)}\" "
      "font-family=\"ui-monospace, DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"12\">\n<defs>\n")
    for _kind, (colour, _dash, marker) in sorted(_EDGE_STYLE.items()):
        o(f"<marker id=\"{marker}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
          f"orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{colour}\"/></marker>\n")
    o("</defs>\n")
    for s in range(n_strata):
        first = offset[s]
        last = offset[s] + max(width_of[s], 1) - 1
        x0 = col_x[first] - _PAD / 2
        x1 = col_x[last] + col_w[last] + _PAD / 2
        fill = "#f5f7fa" if s % 2 == 0 else "#eef2f8"
        o(f"<g class=\"stratum\" id=\"stratum-{s}\"><rect x=\"{_fmt(x0)}\" y=\"4\" width=\"{_fmt(x1 - x0)}\" "
          f"height=\"{_fmt(height - 8)}\" rx=\"6\" fill=\"{fill}\" stroke=\"#d8dde6\"/>"
          f"<text x=\"{_fmt(x0 + 6)}\" y=\"20\" fill=\"#5b6475\" font-family=\"system-ui, sans-serif\">stratum {s}</text></g>\n")
    # edges below nodes
    o("<g class=\"edges\" fill=\"none\" stroke-width=\"1.4\">\n")
    for u in nodes:
        for v in succ[u]:
            kind = g.edges[u, v]["kind"]
            colour, dash, marker = _EDGE_STYLE.get(kind, _EDGE_STYLE["positive"])
            if (u, v) in back or col[v] <= col[u]:
                x1, y1 = cx[u] + node_w[u] / 2, cy[u] + _NODE_H
                x2, y2 = cx[v] + node_w[v] / 2, cy[v] + _NODE_H
                low = max(y1, y2) + _ROW_H * 0.55
                d = f"M{_fmt(x1)},{_fmt(y1)} C{_fmt(x1)},{_fmt(low)} {_fmt(x2)},{_fmt(low)} {_fmt(x2)},{_fmt(y2)}"
            else:
                x1, y1 = cx[u] + node_w[u], cy[u] + _NODE_H / 2
                x2, y2 = cx[v], cy[v] + _NODE_H / 2
                bend = max((x2 - x1) / 2, 20)
                d = f"M{_fmt(x1)},{_fmt(y1)} C{_fmt(x1 + bend)},{_fmt(y1)} {_fmt(x2 - bend)},{_fmt(y2)} {_fmt(x2)},{_fmt(y2)}"
            o(f"<path class=\"edge {kind}\" d=\"{d}\" stroke=\"{colour}\"{dash} marker-end=\"url(#{marker})\">"
              f"<title>{_e(label[u])} → {_e(label[v])} ({_e(kind)})</title></path>\n")
    o("</g>\n<g class=\"nodes\">\n")
    for n in nodes:
        data = g.nodes[n]
        x0, y0, wd = cx[n], cy[n], node_w[n]
        if data["kind"] == "relation":
            rel = program.relations[data["name"]]
            cols = ", ".join(f"{c.name}: {c.type}" for c in rel.columns)
            tip = f"{'input ' if rel.is_input else ''}relation {rel.name}({cols}), stratum {s_of[n]}"
            fill = "#e8f0fe" if rel.is_input else "#ffffff"
            shape = (f"<rect x=\"{_fmt(x0)}\" y=\"{_fmt(y0)}\" width=\"{_fmt(wd)}\" height=\"{_NODE_H}\" rx=\"2\" "
                     f"fill=\"{fill}\" stroke=\"#4a6fa5\"/>")
            body = (f"<title>{_e(tip)}</title>{shape}<text x=\"{_fmt(x0 + wd / 2)}\" y=\"{_fmt(y0 + 16)}\" "
                    f"text-anchor=\"middle\" fill=\"#1d2330\">{_e(label[n])}</text>")
            if linked is not None and rel.name in linked:
                body = f"<a href=\"#rel-{_e(rel.name)}\">{body}</a>"
            o(f"<g class=\"node relation\" id=\"g-rel-{_e(rel.name)}\">{body}</g>\n")
        else:
            agent = program.agents[int(n.split(":")[1])]
            tip = f"{agent.kind} {agent.name} at {agent.span.file}:{agent.span.line}"
            if agent.description:
                tip += f": {agent.description}"
            o(f"<g class=\"node agent\" id=\"g-agent-{agent.id}\"><title>{_e(tip)}</title>"
              f"<rect x=\"{_fmt(x0)}\" y=\"{_fmt(y0)}\" width=\"{_fmt(wd)}\" height=\"{_NODE_H}\" rx=\"12\" "
              f"fill=\"#fdf6e3\" stroke=\"#a07d2c\"/><text x=\"{_fmt(x0 + wd / 2)}\" y=\"{_fmt(y0 + 16)}\" "
              f"text-anchor=\"middle\" fill=\"#1d2330\">{_e(label[n])}</text></g>\n")
    o("</g>\n</svg>\n")
    return "".join(out)


# ---------------------------------------------------------------- facts

def _facts(page: _Page, w: Any) -> None:
    r = page.result
    w("<section id=\"facts\">\n<h2>Facts</h2>\n")
    total_rows = sum(len(rows) for rows in page.rows.values())
    w("<div class=\"filterbar\"><label for=\"filter-box\">Filter facts </label>"
      "<input type=\"search\" id=\"filter-box\" placeholder=\"text in a fact, e.g. reject\" autocomplete=\"off\">"
      f" <span id=\"filter-count\" class=\"muted\">{total_rows} facts</span>"
      "<button type=\"button\" id=\"expand-all\">expand all proofs</button>"
      "<button type=\"button\" id=\"collapse-all\">collapse all proofs</button></div>\n")
    derived = [row for name in page.relations for row in page.rows.get(name, [])
               if row.proof is not None and not row.proof.is_input]
    if len(derived) > page.max_proofs:
        page.trees_skipped = len(derived) - page.max_proofs
        w(f"<p class=\"note\" id=\"proofs-capped\">Proof trees are shown for the first {page.max_proofs} of "
          f"{len(derived)} derived facts (relations in name order, facts sorted); the others show their agent and "
          f"cycle only. Use <code>converge why</code> for any fact, or <code>--relation</code> / "
          f"<code>--max-proofs</code> to choose.</p>\n")
    if page.capped_rows:
        hidden = sum(page.capped_rows.values())
        w(f"<p class=\"note\" id=\"rows-capped\">The table holds the first {page.max_rows} facts; {hidden} more are not "
          f"shown ({_e(', '.join(f'{k}: {v}' for k, v in page.capped_rows.items()))}). Use <code>--relation</code> or "
          f"<code>--max-rows</code> to choose.</p>\n")
    w(f"<p class=\"muted\">Proof trees go at most {page.depth} levels deep; a premise proven elsewhere in the same tree "
      "is linked, not repeated.</p>\n")
    budget = page.max_proofs
    for name in page.relations:
        rel = r.program.relations[name]
        rows = page.rows.get(name, [])
        weak = any(row.confidence < 1.0 for row in rows)
        cols = ", ".join(f"{c.name}: {c.type}" for c in rel.columns)
        key = ""
        if rel.key is not None:
            key = (f" key({', '.join(rel.columns[i].name for i in rel.key.columns)}) "
                   f"prefer {rel.key.prefer}({rel.columns[rel.key.column].name})")
        w(f"<section class=\"relation\" id=\"rel-{_e(name)}\">\n<h3>{_e(name)} <span class=\"muted\">"
          f"({r.count(name)} fact{'s' if r.count(name) != 1 else ''}{', input' if rel.is_input else ''})</span> "
          f"<span class=\"shown muted\"></span></h3>\n")
        w(f"<div class=\"muted mono\">{'input ' if rel.is_input else ''}relation {_e(name)}({_e(cols)}){_e(key)}</div>\n")
        if not rows:
            w("<p class=\"muted\">no facts</p>\n" if not page.capped_rows.get(name) else "<p class=\"muted\">not shown (row limit)</p>\n")
        else:
            w("<table class=\"facts\">\n<tr>")
            for c in rel.columns:
                w(f"<th title=\"{_e(c.type)}\">{_e(c.name)}</th>")
            if weak:
                w("<th>confidence</th>")
            w("<th>cycle</th><th>source</th><th>proof</th></tr>\n")
            for row in rows:
                budget = _fact_row(page, row, weak, budget, w)
            w("</table>\n")
            if page.capped_rows.get(name):
                w(f"<p class=\"muted\">and {page.capped_rows[name]} more not shown (row limit)</p>\n")
        superseded = r.superseded(name)
        if superseded:
            w(f"<details class=\"superseded\"><summary>{len(superseded)} superseded fact(s)</summary><ul>\n")
            for fact, by, cycle in superseded[:MAX_EVENTS * 4]:
                w(f"<li class=\"mono\">{_e(format_fact(name, fact))} superseded in <a href=\"#cycle-{cycle}\">cycle {cycle}</a> "
                  f"by {_fact_link(page, name, by)}</li>\n")
            if len(superseded) > MAX_EVENTS * 4:
                w(f"<li class=\"muted\">and {len(superseded) - MAX_EVENTS * 4} more</li>\n")
            w("</ul></details>\n")
        w("</section>\n")
    w("</section>\n")


def _fact_link(page: _Page, relation: str, fact: Sequence[Any]) -> str:
    fact = tuple(fact)
    text = _e(format_fact(relation, fact))
    if (relation, fact) in page.shown:
        return f"<a class=\"ft\" href=\"#{_e(fact_anchor(relation, fact))}\">{text}</a>"
    return f"<span class=\"ft\">{text}</span>"


def _source_text(proof: Any) -> str:
    if proof.source is None:
        return "input"
    file, line = proof.source
    return f"{file}:{line}" if line else str(file)


def _fact_row(page: _Page, row: _Row, weak: bool, budget: int, w: Any) -> int:
    p = row.proof
    text = format_fact(row.relation, row.fact)
    w(f"<tr class=\"fact\" id=\"{_e(row.anchor)}\" data-k=\"{_e(text.lower())}\">")
    for v in row.fact:
        w(f"<td class=\"v\">{_e(format_value(v))}</td>")
    if weak:
        w(f"<td class=\"num\">{_e(format(row.confidence, 'g'))}</td>" if row.confidence < 1.0 else "<td class=\"num\">1</td>")
    if p is None:
        w("<td></td><td></td><td></td></tr>\n")
        return budget
    if p.is_input:
        w(f"<td class=\"num\"><a href=\"#cycle-0\">0</a></td><td>input <span class=\"muted mono\">{_e(_source_text(p))}</span></td>"
          "<td class=\"muted\">given</td></tr>\n")
        return budget
    where = f"{p.agent_span.file}:{p.agent_span.line}" if p.agent_span else ""
    w(f"<td class=\"num\"><a href=\"#cycle-{p.cycle}\">{p.cycle}</a></td>"
      f"<td><code title=\"{_e(where)}\">{_e(p.agent)}</code></td><td>")
    if budget > 0:
        tree = page.result.why((row.relation, row.fact), depth=page.depth)
        if tree is not None:
            counter = [0]
            inner = _tree_node(page, tree, counter)
            w(f"<details class=\"proof\" id=\"{_e(proof_id(row.relation, row.fact))}\"><summary>proof "
              f"<span class=\"muted\">({counter[0]} step{'s' if counter[0] != 1 else ''})</span></summary>{inner}</details>")
            page.trees += 1
        budget -= 1
    else:
        w("<span class=\"muted\">not rendered (limit)</span>")
    w("</td></tr>\n")
    return budget


def _meta(p: Any) -> str:
    conf = f", confidence {p.confidence:g}" if p.confidence < 1.0 else ""
    if p.is_input:
        return f"input, {_source_text(p)}{conf}"
    loc = f" at {p.agent_span.file}:{p.agent_span.line}" if p.agent_span else ""
    return f"{p.agent}{loc}, cycle {p.cycle}{conf}"


def _tree_node(page: _Page, node: Any, counter: list[int]) -> str:
    """A proof tree as nested HTML: at most MAX_TREE_NODES nodes (``counter`` counts them),
    the rest replaced by a note. Walked with an explicit stack, not recursion."""
    from .proofs import pattern_text

    def enter(n: Any) -> tuple[str, list[Any] | None]:
        """A leaf's HTML, or a frame for a derived node: [node, parts, next child, opening]."""
        counter[0] += 1
        p = n.proof
        link = _fact_link(page, p.relation, p.fact)
        meta = f"<span class=\"meta\">[{_e(_meta(p))}]</span>"
        sup = ""
        if p.superseded_by is not None:
            by, cycle = p.superseded_by
            sup = f" <span class=\"meta\">(superseded in cycle {cycle} by {_e(format_fact(p.relation, by))})</span>"
        if p.is_input:
            return f"<div class=\"pn input\">{link} {meta}{sup}</div>", None
        if n.repeated:
            return f"<div class=\"pn repeated\">{link} {meta} <span class=\"cut\">proven above</span></div>", None
        if n.truncated:
            return (f"<div class=\"pn truncated\">{link} {meta} <span class=\"cut\">deeper premises not shown "
                    f"(depth {page.depth}); follow the link to its own proof</span></div>"), None
        parts: list[str] = []
        if p.bindings:
            parts.append("<div class=\"bind\">with " + _e(", ".join(f"{k} = {format_value(v)}" for k, v in p.bindings.items())) + "</div>")
        return "", [n, parts, 0, f"<details class=\"pn derived\" open><summary>{link} {meta}{sup}</summary>"]

    html, frame = enter(node)
    if frame is None:
        return html
    stack = [frame]
    while True:
        frame = stack[-1]
        n, parts, i, opening = frame
        if i < len(n.children):
            if counter[0] >= MAX_TREE_NODES:
                parts.append(f"<div class=\"cut\">{len(n.children) - i} more premise(s) not shown (tree limit); "
                             "follow the links to their own proofs</div>")
                frame[2] = len(n.children)
                continue
            frame[2] = i + 1
            html, child = enter(n.children[i])
            if child is None:
                parts.append(html)
            else:
                stack.append(child)
            continue
        p = n.proof
        for t, v in p.aggregates:
            parts.append(f"<div class=\"agg\">{_e(t)} = {_e(format_value(v))}</div>")
        for c in p.conditions:
            parts.append(f"<div class=\"cond\">{_e(c)} <span class=\"ok\">✓ holds</span></div>")
        for rel, pattern in p.negated:
            parts.append(f"<div class=\"neg\">not {_e(pattern_text(rel, pattern))} <span class=\"ok\">✓ checked absent</span></div>")
        html = f"{opening}<div class=\"pb\">{''.join(parts)}</div></details>"
        stack.pop()
        if not stack:
            return html
        stack[-1][1].append(html)
