"""`converge report` pages in a real browser: headless Chromium (Debian's `chromium`).

Skipped when /usr/bin/chromium is missing (`.ci/run` installs it). Chromium
runs with ``--enable-logging=stderr --v=0``, which prints every console
message of the page to stderr as ``...:INFO:CONSOLE:LINE] "message", source:
URL (LINE)`` (older releases: ``CONSOLE(LINE)``), whatever its level, and
uncaught exceptions as ``"Uncaught ..."``. The report logs nothing itself,
so any such line is an error; ``test_console_errors_are_detected`` proves
the detection on a page with a deliberate error. ``--dump-dom`` prints the
DOM after the scripts ran (``--virtual-time-budget`` lets them finish).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.explain.report import fact_anchor, proof_id, render_report
from converge_rules.values import format_fact

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")]

_profiles = itertools.count()


def load(path: Path, tmp_path: Path, fragment: str = "") -> tuple[str, list[str]]:
    """Open a file in headless Chromium: (the DOM after scripts ran, the console lines)."""
    profile = tmp_path / f"chromium-profile-{next(_profiles)}"
    url = path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=2000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip(), f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    console = [line for line in proc.stderr.splitlines() if CONSOLE.search(line) or "Uncaught" in line]
    return proc.stdout, console


class Elements(HTMLParser):
    """Every start tag of a dumped DOM: (tag, attributes)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def by_id(self, ident: str) -> dict[str, str | None] | None:
        return next((a for _t, a in self.found if a.get("id") == ident), None)


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@pytest.fixture(scope="module")
def loans() -> tuple[object, str]:
    result = cr.load([str(ROOT / "examples/loans/loans.cvg")]).run(fact_files=[str(ROOT / "examples/loans/facts.json")],
                                                                   trace=True)
    return result, render_report(result)


def with_script(page: str, script: str, allow: bool = True) -> str:
    """The page with one more inline script at the end (allowed by the page's CSP when ``allow``)."""
    if allow:  # the policy sits in an attribute, its quotes escaped as &#x27;
        extra = html.escape(csp_hash(script), quote=True)
        page, n = re.subn(r"script-src (&#x27;sha256-[^&]+&#x27;)", lambda m: f"script-src {m.group(1)} {extra}", page, count=1)
        assert n == 1
    return page.replace("</body>", f"<script>{script}</script>\n</body>", 1)


def test_console_errors_are_detected(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>t</title></head><body><p id=\"x\">x</p>"
                    "<script>document.getElementById('x').setAttribute('data-ran', '1'); notDefinedAnywhere();</script>"
                    "</body></html>", encoding="utf-8")
    dom, console = load(page, tmp_path)
    assert 'data-ran="1"' in dom
    assert any("Uncaught ReferenceError: notDefinedAnywhere is not defined" in line for line in console), console


def test_report_renders_without_console_errors(loans: tuple[object, str], tmp_path: Path) -> None:
    result, page = loans
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    dom, console = load(path, tmp_path)
    assert console == []
    assert 'data-report-ready="1"' in dom  # the report's script ran to its end
    elements = Elements(dom)
    tree = elements.by_id(proof_id("decision", ("l1", "reject")))
    assert tree is not None and "proof" in (tree.get("class") or "")
    assert [t for t, a in elements.found if a.get("id") == proof_id("decision", ("l1", "reject"))] == ["details"]
    assert 'risk("l1", "amount above 5x income")' in dom
    assert any(t == "svg" for t, _a in elements.found)
    tier = elements.by_id("tier")
    assert tier is not None and "tier-converged" in (tier.get("class") or "")


def test_filter_box_hides_rows_client_side(loans: tuple[object, str], tmp_path: Path) -> None:
    result, page = loans
    script = ("var b = document.getElementById('filter-box'); b.value = 'Reject';"
              " b.dispatchEvent(new Event('input'));")
    path = tmp_path / "filtered.html"
    path.write_text(with_script(page, script), encoding="utf-8")
    dom, console = load(path, tmp_path)
    assert console == []
    rows = [a for t, a in Elements(dom).found if t == "tr" and "fact" in (a.get("class") or "").split()]
    shown = {a["id"] for a in rows if "hidden" not in a}
    expected = {fact_anchor(name, f) for name in result.relations() for f in result.facts(name)  # type: ignore[attr-defined]
                if "reject" in format_fact(name, f).lower()}
    assert shown == expected and "fact-decision-l1-reject" in shown
    assert len(rows) == result.total_facts  # type: ignore[attr-defined]
    assert f"{len(expected)} of {len(rows)} facts match" in dom


def test_deep_link_opens_the_fact_proof(loans: tuple[object, str], tmp_path: Path) -> None:
    _result, page = loans
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    dom, console = load(path, tmp_path, fragment="fact-decision-l1-reject")
    assert console == []
    tree = Elements(dom).by_id(proof_id("decision", ("l1", "reject")))
    assert tree is not None and "open" in tree
    other = Elements(dom).by_id(proof_id("decided", ("l1",)))
    assert other is not None and "open" not in other


def test_injected_script_is_blocked_by_the_content_security_policy(loans: tuple[object, str], tmp_path: Path) -> None:
    _result, page = loans
    path = tmp_path / "injected.html"
    path.write_text(with_script(page, "document.body.setAttribute('data-injected', '1');", allow=False), encoding="utf-8")
    dom, console = load(path, tmp_path)
    assert 'data-injected="1"' not in dom
    assert any("Content Security Policy" in line for line in console), console
