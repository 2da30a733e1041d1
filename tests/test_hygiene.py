"""Library hygiene: used inside a long-lived process (the decision service, a web app, a
notebook), the package changes no process-wide state and keeps no cache that grows with
every new job (rule text, schema, relation name)."""

from __future__ import annotations

import atexit
import faulthandler
import gc
import itertools
import json
import locale
import logging
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import converge_rules as cr
from converge_rules.io import facts as facts_module

ROOT = Path(__file__).resolve().parent.parent
LOANS = str(ROOT / "examples" / "loans" / "loans.cvg")
LOANS_FACTS = str(ROOT / "examples" / "loans" / "facts.json")
FLAKY = str(ROOT / "examples" / "flaky" / "flaky.cvg")


def _process_state() -> dict[str, object]:
    root = logging.getLogger()
    signals = {}
    for sig in signal.valid_signals():
        try:
            signals[int(sig)] = signal.getsignal(sig)
        except (ValueError, OSError):  # pragma: no cover - platform-specific
            pass
    umask = os.umask(0o022)
    os.umask(umask)
    return {
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_debug()),
        "sys.path": list(sys.path), "meta_path": list(sys.meta_path), "path_hooks": list(sys.path_hooks),
        "environ": dict(os.environ), "cwd": os.getcwd(), "umask": umask,
        "signals": signals,
        "logging": (root.level, list(root.handlers), logging.root.manager.disable,
                    {n: (getattr(lg, "level", None), list(getattr(lg, "handlers", [])))
                     for n, lg in logging.root.manager.loggerDict.items()}),
        "warnings": list(warnings.filters),
        "recursionlimit": sys.getrecursionlimit(), "stack_size": threading.stack_size(),
        "switchinterval": sys.getswitchinterval(), "int_max_str_digits": sys.get_int_max_str_digits(),
        "locale": locale.setlocale(locale.LC_ALL, None), "faulthandler": faulthandler.is_enabled(),
        "atexit": atexit._ncallbacks(),
        "start_method": multiprocessing.get_start_method(allow_none=True),
        "hooks": (sys.excepthook, threading.excepthook, sys.unraisablehook, sys.displayhook,
                  sys.gettrace(), sys.getprofile(), sys.breakpointhook),
        "streams": (sys.stdin, sys.stdout, sys.stderr),
        "modules": sorted(m for m in sys.modules if not m.startswith("converge_tools_")),
        "threads": sorted(t.name for t in threading.enumerate()),
    }


def _every_entry_point(tmp: Path) -> None:
    """One use of each public entry point, as a library user would make it."""
    rules = cr.load([LOANS])
    assert not [d for d in cr.check([LOANS]) if d.is_error]
    result = rules.run(fact_files=[LOANS_FACTS], trace=True, all_proofs=True, analyze=True)
    result.facts("decision"), result.to_json(proofs=True), result.trace_jsonl()
    node = result.why('decision("l1", "reject")')
    for render in (cr.render_text, cr.render_json, cr.render_dot, cr.render_mermaid):
        render(node)
    result.why_not('decision("l1", "approve")')
    record = result.to_record(key=b"k" * 32)
    record.write(str(tmp / "record.json"))
    reopened = cr.open_record(str(tmp / "record.json"), key=b"k" * 32)
    reopened.why_text('decision("l1", "reject")')
    cr.load_text("input relation p(x: int)\nrelation q(x: int)\nq(x) :- p(x), x > 1.\n").run({"p": [[1], [2]]})
    cr.load_sources({"a.cvg": "input relation p(x: str)\n"}).run({"p": [["a"]]})
    try:
        cr.load_text("relation p(x: int\n")
    except cr.ConvergeError as err:
        [d.render() for d in err.diagnostics]
    session = cr.Session([LOANS])
    session.decide(json.loads(Path(LOANS_FACTS).read_text()))
    session.swap([("loans.cvg", Path(LOANS).read_text())])
    list(rules.run_many([("j1", {"applicant": [["a", 1]], "loan": [["l", "a", 9]]})], workers=1))
    flaky = cr.load([FLAKY])
    for isolation in ("thread", "process"):
        flaky.run({"applicant": [["a1", 2000]]}, tools={"credit_score": lambda a: 700},
                  tool_isolation=isolation, workers=2)
    from converge_rules.syntax.format import format_source
    from converge_rules.testing import run_paths

    format_source(Path(LOANS).read_text(), LOANS)
    run_paths([str(ROOT / "examples" / "loans")])
    from converge_rules.explain.checker import verify_file
    from converge_rules.explain.report import render_report

    render_report(result)
    (tmp / "result.json").write_text(result.to_json(proofs=True))
    assert verify_file(str(tmp / "result.json")).ok
    _service(session, tmp)


def _service(session: cr.Session, tmp: Path) -> None:
    """The decision service as an application mounted in the user's own server."""
    import asyncio

    import httpx

    from converge_rules.service import create_app
    from converge_rules.store import open_store

    facts = json.loads(Path(LOANS_FACTS).read_text())
    with open_store(f"sqlite:///{tmp / 'decisions.db'}") as store:
        app = create_app(session, store)

        async def scenario() -> None:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                made = await c.post("/v1/decisions", json={"facts": facts})
                assert made.status_code == 200, made.text
                assert (await c.get(f"/v1/decisions/{made.json()['decision_id']}")).status_code == 200
                assert (await c.get("/metrics")).status_code == 200

        asyncio.run(scenario())


def test_public_api_changes_no_process_wide_state(tmp_path: Path) -> None:
    _every_entry_point(tmp_path)  # first use: imports, thread pools started once, parser caches
    before = _process_state()
    _every_entry_point(tmp_path)
    after = _process_state()
    assert {k: v for k, v in after.items() if before[k] != v} == {}


def test_csv_row_converters_do_not_grow_with_every_schema(tmp_path: Path) -> None:
    """Each new column signature of a CSV file compiles a row converter; a process that loads
    the facts of ever new schemas keeps only the most recent ones, with the same answers."""
    kept = facts_module.ROW_CONVERTERS_KEPT
    values = {"str": ("a", "a"), "int": ("7", 7), "float": ("1.5", 1.5), "bool": ("true", True)}
    signatures = itertools.islice((sig for arity in itertools.count(1)
                                   for sig in itertools.product(values, repeat=arity)), kept + 40)
    for n, sig in enumerate(signatures):
        schema = ", ".join(f"c{k}: {t}" for k, t in enumerate(sig))
        rules = cr.load_text(f"input relation t{n}({schema})\n", f"t{n}.cvg")
        path = tmp_path / f"t{n}.csv"
        path.write_text(",".join(values[t][0] for t in sig) + "\n")
        assert rules.run(fact_files=[str(path)]).facts(f"t{n}") == [tuple(values[t][1] for t in sig)]
    assert facts_module._row_converter.cache_info().currsize <= kept


DIVIDE = """input relation p(x: int, y: int)
input relation w(x: int)
relation q(z: int)
relation big(x: int)
big(x) :- w(x), p(x, _), x > 2.
agent div "divides" {
  when p(x, y), w(x), z = x / y
  emit q(z)
}
"""


def test_a_long_lived_rule_set_keeps_each_span_once(monkeypatch) -> None:
    """A rule set reused for ever new jobs (a Session, a service) starts its code cache over now
    and then; the code generated again must not add the rule's spans once more every time, and
    the spans it reports stay right."""
    from converge_rules.engine.codegen import CodeCache

    monkeypatch.setattr(CodeCache, "LIMIT", 3)  # start over often, as a busy service eventually does
    rules = cr.load_text(DIVIDE, "d.cvg")

    def job(n: int) -> dict[str, list[list[int]]]:
        return {"p": [[x, 1 + x % 3] for x in range(1, 2 + n % 13)], "w": [[x] for x in range(1, 2 + n % 7)]}

    def kept() -> int:
        return sum(len(spans) for spans, _ids in rules._code_cache.spans.values())

    for n in range(60):
        assert rules.run(job(n)).digest == cr.load_text(DIVIDE, "d.cvg").run(job(n)).digest
    first = kept()
    for n in range(60, 200):
        rules.run(job(n))
    assert kept() == first
    failed = rules.run({"p": [[1, 0]], "w": [[1]]})
    assert failed.tier.value == "failed"
    assert failed.reasons[0].to_json()["span"] == {"file": "d.cvg", "line": 7, "col": 27, "end_line": 7, "end_col": 32}


def test_concurrent_loads_of_same_named_texts_quote_their_own_lines() -> None:
    """Two threads (two requests of a service, two users of a web app) compile different texts
    under the same file name: each error quotes its own text, never the other one's."""
    wrong = 'input relation p(x: int)\nrelation q(x: int)\nq(x) :- p(x), x > "a".\n'
    other = ('input relation p(x: str)\nrelation r(y: str)\n# OTHER TEXT OTHER TEXT OTHER TEXT OTHER TEXT\n'
             'r(y) :- p(y).\n')
    quoted: list[str] = []

    def failing() -> None:
        for _ in range(150):
            try:
                cr.load_text(wrong, "rules.cvg")
            except cr.ConvergeError as err:
                quoted.append(str(err).splitlines()[1])

    def passing() -> None:
        for _ in range(150):
            cr.load_text(other, "rules.cvg")

    threads = [threading.Thread(target=failing), threading.Thread(target=passing)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(quoted) == 150
    assert set(quoted) == {'   3 | q(x) :- p(x), x > "a".'}
