"""`converge report`: the HTML page's structure, checked with html.parser (no browser).

The browser test (tests/test_report_browser.py, marker `browser`) loads the
same page in headless Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest

import converge_rules as cr
from converge_rules.explain.report import fact_anchor, proof_id, render_report
from converge_rules.values import format_fact

ROOT = Path(__file__).resolve().parent.parent
LOANS_RULES = "examples/loans/loans.cvg"
LOANS_FACTS = "examples/loans/facts.json"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def converge(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- a tiny DOM

class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator["Node"]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list["Node"]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, ident: str) -> "Node | None":
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) <= 1, f"id {ident!r} is not unique"
        return found[0] if found else None

    def ancestors(self) -> Iterator["Node"]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


class TreeBuilder(HTMLParser):
    """Builds a tree and insists on well-formed nesting (every open tag closed in order)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.cur.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.cur.tag}> at {self.getpos()}")
            return
        assert self.cur.parent is not None
        self.cur = self.cur.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.errors == [], builder.errors[:5]
    assert builder.cur is builder.root, f"unclosed <{builder.cur.tag}>"
    return builder.root


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def loans_result() -> Any:
    return cr.load([str(ROOT / LOANS_RULES)]).run(fact_files=[str(ROOT / LOANS_FACTS)], trace=True)


@pytest.fixture(scope="module")
def loans_page(loans_result: Any) -> str:
    return render_report(loans_result)


@pytest.fixture(scope="module")
def loans_dom(loans_page: str) -> Node:
    return parse(loans_page)


# ---------------------------------------------------------------- the command

def test_report_command_writes_one_file(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run = converge("report", LOANS_RULES, "--facts", LOANS_FACTS, "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert out.is_file() and f"wrote {out}: tier converged" in run.stdout
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert f"{len(page.encode('utf-8'))} bytes" in run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # atomic write leaves no temporary file


def test_report_bytes_are_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    for out in (a, b):
        run = converge("report", LOANS_RULES, "--facts", LOANS_FACTS, "-o", str(out))
        assert run.returncode == 0, run.stderr
    assert a.read_bytes() == b.read_bytes()
    # and in-process, two separate jobs give the same page
    pages = [render_report(cr.load([str(ROOT / LOANS_RULES)]).run(fact_files=[str(ROOT / LOANS_FACTS)], trace=True))
             for _ in range(2)]
    assert pages[0] == pages[1]


def test_report_exit_code_follows_the_tier_and_failed_jobs_get_a_report(tmp_path: Path) -> None:
    out = tmp_path / "failed.html"
    run = converge("report", "examples/failures/divzero.cvg", "-o", str(out))
    assert run.returncode == 5, run.stderr
    dom = parse(out.read_text(encoding="utf-8"))
    tier = dom.by_id("tier")
    assert tier is not None and tier.text() == "failed" and "tier-failed" in tier.classes
    reasons = dom.find_all("ol", cls="reasons")[0].text()
    assert "agent_failed" in reasons and "division by zero" in reasons
    cycle = dom.by_id("cycle-1")
    assert cycle is not None and "has-failure" in cycle.classes and "division by zero" in cycle.text()


def test_report_usage_and_write_errors(tmp_path: Path) -> None:
    bad = converge("report", LOANS_RULES, "--facts", LOANS_FACTS, "-o", str(tmp_path / "r.html"), "--relation", "nope")
    assert bad.returncode == 2 and "no relation named 'nope'" in bad.stderr
    missing = converge("report", LOANS_RULES, "--facts", LOANS_FACTS)
    assert missing.returncode == 2 and "--output" in missing.stderr
    nowhere = converge("report", LOANS_RULES, "--facts", LOANS_FACTS, "-o", str(tmp_path / "no" / "dir" / "r.html"))
    assert nowhere.returncode == 1 and "E507" in nowhere.stderr
    help_text = converge("report", "--help").stdout
    for flag in ("--max-cycles", "--tools", "--on-failure", "--goal", "--relation", "--depth", "--max-proofs"):
        assert flag in help_text  # the same budget and tool flags as run


# ---------------------------------------------------------------- outcome

def test_outcome_tier_reasons_budgets(loans_result: Any, loans_dom: Node) -> None:
    tier = loans_dom.by_id("tier")
    assert tier is not None and tier.text() == "converged" and "tier-converged" in tier.classes
    outcome = loans_dom.by_id("outcome")
    assert outcome is not None
    text = outcome.text()
    assert loans_result.digest in text and f"{loans_result.total_facts}" in text
    budgets = outcome.find_all("table", cls="budgets")[0]
    names = [row.find_all("td")[0].text() for row in budgets.find_all("tr")[1:]]
    assert names == list(loans_result.budget.to_json())
    assert f"{loans_result.cycles} cycles" in budgets.text()


def test_every_relation_has_a_section_with_every_fact(loans_result: Any, loans_dom: Node) -> None:
    for name in loans_result.relations():
        section = loans_dom.by_id(f"rel-{name}")
        assert section is not None and section.tag == "section" and "relation" in section.classes, name
        rows = section.find_all("tr", cls="fact")
        assert len(rows) == loans_result.count(name)
        assert [r.attrs["id"] for r in rows] == [fact_anchor(name, f) for f in loans_result.facts(name)]
        for row, fact in zip(rows, loans_result.facts(name)):
            assert row.attrs["data-k"] == format_fact(name, fact).lower()
    assert loans_dom.by_id("filter-box") is not None  # the search box
    # a fact row can be linked to by a readable anchor
    assert loans_dom.by_id("fact-decision-l1-reject") is not None


def test_proof_tree_of_a_chosen_fact(loans_result: Any, loans_dom: Node) -> None:
    tree = loans_dom.by_id(proof_id("decision", ("l1", "reject")))
    assert tree is not None and tree.tag == "details" and "proof" in tree.classes
    row = loans_dom.by_id("fact-decision-l1-reject")
    assert row is not None and tree in list(row.iter())
    root = tree.find_all("details", cls="pn")[0]
    assert root.find_all("summary")[0].text().startswith('decision("l1", "reject")')
    # its premises, as the engine recorded them, are nested below it
    proof = loans_result.proof("decision", ("l1", "reject"))
    body = root.find_all("div", cls="pb")[0]
    premise_texts = [format_fact(r, f) for r, f in proof.premises]
    shown = [n.text() for n in body.find_all("a", cls="ft")] + [n.text() for n in body.find_all("span", cls="ft")]
    for premise in premise_texts:
        assert premise in shown
    # derived premises are collapsible (nested <details>) and the input leaves are marked as inputs
    nested = [d.find_all("summary")[0].text() for d in root.find_all("details", cls="pn")]
    assert any(t.startswith('risk("l1", ') for t in nested)
    leaves = [n.text() for n in root.find_all("div", cls="input")]
    assert any(t.startswith('loan("l1", "a1", 6000)') and "input" in t for t in leaves)
    assert any(t.startswith('applicant("a1", 1000)') for t in leaves)
    assert "✓ holds" in root.text()  # the comparison that held
    # the leaves link to their own rows
    links = {a.attrs["href"] for a in root.find_all("a", cls="ft")}
    assert "#" + fact_anchor("applicant", ("a1", 1000)) in links


def test_a_negated_premise_is_shown_checked_absent(loans_result: Any, loans_dom: Node) -> None:
    approve = next(f for f in loans_result.facts("decision") if f[1] == "approve")
    tree = loans_dom.by_id(proof_id("decision", approve))
    assert tree is not None
    negs = [n.text() for n in tree.find_all("div", cls="neg")]
    assert negs and negs[0].startswith(f'not risk("{approve[0]}", _)') and "checked absent" in negs[0]


def test_input_facts_have_no_tree_but_a_source(loans_dom: Node) -> None:
    row = loans_dom.by_id(fact_anchor("applicant", ("a1", 1000)))
    assert row is not None and not row.find_all("details")
    assert "facts.json:" in row.text()


def test_timeline_per_cycle_links_to_facts(loans_result: Any, loans_dom: Node) -> None:
    timeline = loans_dom.by_id("timeline")
    assert timeline is not None
    for cycle in range(loans_result.cycles + 1):
        assert loans_dom.by_id(f"cycle-{cycle}") is not None
    merges = [e for e in loans_result.trace if e["event"] == "merge"]
    for e in merges:
        section = loans_dom.by_id(f"cycle-{e['cycle']}")
        assert section is not None and f"+{e['new']} {e['relation']}" in section.text()
    # deep links from the timeline to facts, and every link target exists
    proof = loans_result.proof("decision", ("l1", "reject"))
    cycle = loans_dom.by_id(f"cycle-{proof.cycle}")
    assert cycle is not None
    hrefs = {a.attrs.get("href") for a in cycle.find_all("a")}
    assert "#fact-decision-l1-reject" in hrefs
    ids = {n.attrs["id"] for n in loans_dom.iter() if "id" in n.attrs}
    for a in loans_dom.find_all("a"):
        href = a.attrs.get("href") or ""
        assert href.startswith("#") and href[1:] in ids, href


def test_dependency_graph_is_inline_svg(loans_result: Any, loans_dom: Node) -> None:
    graph = loans_dom.by_id("graph")
    assert graph is not None
    svg = graph.find_all("svg")[0]
    labels = {t.text() for t in svg.find_all("text")}
    assert set(loans_result.relations()) <= labels
    assert {a.name for a in loans_result.program.agents} <= labels
    assert svg.find_all("g", cls="stratum")
    negative = svg.find_all("path", cls="negative")
    assert negative and all(p.attrs.get("stroke-dasharray") and p.attrs.get("stroke") == "#c5221f" for p in negative)
    aggregate = svg.find_all("path", cls="aggregate")
    assert aggregate and all(p.attrs.get("stroke-dasharray") for p in aggregate)


def test_no_network_resources(loans_page: str, loans_dom: Node) -> None:
    assert "http://" not in loans_page and "https://" not in loans_page
    assert not re.search(r"@import|url\((?!#)", loans_page)
    for node in loans_dom.iter():
        assert node.tag not in ("link", "iframe", "img", "object", "embed", "base")
        assert "src" not in node.attrs, node.tag
        if node.tag == "script":
            assert not node.attrs
    csp = loans_dom.find_all("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in (csp[0].attrs["content"] or "")
    assert len(loans_dom.find_all("script")) == 1 and len(loans_dom.find_all("style")) == 1


def test_user_text_is_escaped() -> None:
    evil = '<script>alert("x")</script> & \' "'
    ruleset = cr.load_text("""
        input relation note(text: str)
        relation echo(text: str)
        echo(t) :- note(t).
    """)
    result = ruleset.run(facts={"note": [(evil,), ("plain",)]}, trace=True)
    page = render_report(result)
    dom = parse(page)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;/script&gt;" in page  # shown as text, quoted as the language does
    assert "<script>" not in page.replace("<script>\n(function", "")  # the report's own script is the only one
    assert len(dom.find_all("script")) == 1  # only the report's own script
    row = dom.by_id(fact_anchor("echo", (evil,)))
    assert row is not None and "~" in row.attrs["id"]
    assert row.attrs["data-k"] == format_fact("echo", (evil,)).lower()
    from converge_rules.values import format_value

    assert format_value(evil) in row.text()  # the text itself survives as text
    tree = dom.by_id(proof_id("echo", (evil,)))
    assert tree is not None and format_fact("note", (evil,)) in tree.text()


def test_relation_filter_and_caps(loans_result: Any) -> None:
    dom = parse(render_report(loans_result, ["decision"]))
    sections = {s.attrs["id"] for s in dom.find_all("section", cls="relation")}
    assert sections == {"rel-decision"}
    dom = parse(render_report(loans_result, max_proofs=2, max_rows=10))
    assert dom.by_id("proofs-capped") is not None and dom.by_id("rows-capped") is not None
    assert len(dom.find_all("details", cls="proof")) == 2
    assert len(dom.find_all("tr", cls="fact")) == 10
    deep = parse(render_report(loans_result, depth=1))
    tree = deep.by_id(proof_id("decided", ("l1",)))
    assert tree is not None and tree.find_all("div", cls="truncated")


def test_confidence_column_only_where_a_fact_is_uncertain() -> None:
    ruleset = cr.load_text("""
        input relation ref(who: str)
        relation trusted(who: str)
        relation seen(who: str)
        agent hand_checked "references are checked by hand" {
          confidence 0.9
          when ref(w)
          emit trusted(w)
        }
        seen(w) :- ref(w).
    """)
    result = ruleset.run(facts={"ref": [("ann",)]}, trace=True)
    dom = parse(render_report(result))
    trusted, seen = dom.by_id("rel-trusted"), dom.by_id("rel-seen")
    assert trusted is not None and seen is not None
    assert "confidence" in [th.text() for th in trusted.find_all("th")]
    assert "confidence" not in [th.text() for th in seen.find_all("th")]
    assert "0.9" in trusted.find_all("tr", cls="fact")[0].text()


def test_report_without_trace_still_renders(loans_result: Any) -> None:
    result = cr.load([str(ROOT / LOANS_RULES)]).run(fact_files=[str(ROOT / LOANS_FACTS)])
    dom = parse(render_report(result))
    timeline = dom.by_id("timeline")
    assert timeline is not None and "No trace" in timeline.text()


def test_fact_anchors_are_distinct() -> None:
    facts = [("a", "b"), ("a-b",), ("a", -5), ("a", 5), ("a", 5.0), ("a", True), ("true", 1), ("", 1), ("1a", 1),
             ("a b", 1), ("a~b", 1), ("é", 1), ("a", 1e-05), ("x" * 200, 1)]
    anchors = [fact_anchor("r", f) for f in facts]
    assert len(set(anchors)) == len(anchors)
    assert fact_anchor("decision", ("l1", "reject")) == "fact-decision-l1-reject"
    assert all(re.fullmatch(r"fact-r[-~][A-Za-z0-9_.~-]+", a) for a in anchors)
