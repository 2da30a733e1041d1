"""`converge batch` and `RuleSet.run_many`: sources, sinks, determinism, resume, isolation, Dask."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import converge_rules as cr
from converge_rules.batch import JobResult
from converge_rules.batch.sinks import JsonlSink

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "examples" / "loans" / "loans.cvg")


def _generator():
    spec = importlib.util.spec_from_file_location("make_loan_jobs", ROOT / "examples" / "batch" / "make_loan_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


make_jobs = _generator().make_jobs


def converge(*args: str, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, **kw)


def write_jobs(path: Path, n: int) -> list[dict]:
    jobs = make_jobs(n)
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return jobs


@pytest.fixture(scope="module")
def rules() -> cr.RuleSet:
    return cr.load(RULES)


def test_run_many_matches_run_and_keeps_job_order(rules: cr.RuleSet) -> None:
    jobs = make_jobs(12)
    pairs = [(j["id"], j["facts"]) for j in reversed(jobs)]
    serial = list(rules.run_many(pairs))
    assert [r.id for r in serial] == [j["id"] for j in reversed(jobs)]
    for r, (_id, facts) in zip(serial, pairs):
        try:
            expected = rules.run(facts)
        except cr.ConvergeError:
            assert r.tier == "failed" and r.diagnostics and r.digest is None
            continue
        assert (r.tier, r.digest, r.cycles) == (expected.tier.value, expected.digest, expected.cycles)
        assert r.facts["decision"] == [list(f) for f in expected.facts("decision")]
        assert "loan" not in r.facts  # input relations are not repeated by default
    pooled = list(rules.run_many(pairs, workers=2, relations=["decision"]))
    assert [(r.id, r.digest, r.tier) for r in pooled] == [(r.id, r.digest, r.tier) for r in serial]
    assert set(pooled[0].facts) == {"decision"}


def test_run_many_on_a_dask_local_cluster(rules: cr.RuleSet) -> None:
    from distributed import Client, LocalCluster

    jobs = [(j["id"], j["facts"]) for j in make_jobs(30)]
    serial = [r.line() for r in rules.run_many(jobs)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        on_dask = [r.line() for r in rules.run_many(jobs, client=client)]
        # the rule set reached the workers as a plugin, unregistered when the run ended: a
        # long-lived cluster running ever new rule sets does not keep them all
        other = cr.load_text("input relation n(x: int)\nrelation m(x: int)\nm(x) :- n(x), x > 1.\n", "other.cvg")
        assert [r.facts["m"] for r in other.run_many([("o", {"n": [[1], [2]]})], client=client)] == [[[2]]]
        names = client.run(lambda dask_worker: sorted(n for n in dask_worker.plugins if n.startswith("converge-rules-")))
        assert names and all(v == [] for v in names.values())
    assert on_dask == serial


def test_failures_are_isolated_and_recorded(tmp_path: Path) -> None:
    rules_file = tmp_path / "limits.cvg"
    rules_file.write_text("input relation amount(x: int)\nrelation big(x: int)\nbig(x) :- amount(x), x > 10.\n"
                          "invariant small \"no huge amounts\" { forbid amount(x), x > 1000 }\n")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "ok", "facts": {"amount": [[5], [50]]}}\n'
                    '{"id": "bad-fact", "facts": {"amount": [["many"]]}}\n'
                    '{"id": "unknown", "facts": {"amounts": [[1]]}}\n'
                    '{"id": "violated", "facts": {"amount": [[5000]]}}\n'
                    '{"id": 7, "facts": {"amount": []}}\n')
    out = tmp_path / "out.jsonl"
    proc = converge("batch", str(rules_file), "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 5, proc.stderr
    assert "5 jobs: 2 converged, 0 degraded, 0 bounded, 3 failed" in proc.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [7, "bad-fact", "ok", "unknown", "violated"]  # integers first, then text
    by_id = {r["id"]: r for r in records}
    assert by_id["ok"]["facts"] == {"big": [[50]]} and by_id["ok"]["tier"] == "converged"
    assert by_id["bad-fact"]["diagnostics"][0]["code"] == "E502"
    assert by_id["bad-fact"]["diagnostics"][0]["span"] == {"file": str(jobs), "line": 2, "col": 1, "end_line": 2, "end_col": 1}
    assert by_id["bad-fact"]["diagnostics"][0]["notes"] == ["at facts['amount'][0][0]"]
    assert by_id["unknown"]["diagnostics"][0]["code"] == "E503"
    assert by_id["violated"]["tier"] == "failed" and by_id["violated"]["reasons"][0]["kind"] == "invariant"
    assert not Path(str(out) + ".journal").exists()


def test_batch_budget_caps_every_job(tmp_path: Path) -> None:
    """--timeout and --max-bytes apply to each job: a runaway job stops bounded, the others converge."""
    rules_file = tmp_path / "count.cvg"
    rules_file.write_text("budget { max_cycles = 100000000 }\ninput relation upto(n: int)\nrelation n(x: int)\n"
                          "n(0) :- upto(_).\nn(x + 1) :- n(x), upto(m), x < m.\n")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "small", "facts": {"upto": [[3]]}}\n{"id": "runaway", "facts": {"upto": [[100000000]]}}\n')
    out = tmp_path / "out.jsonl"
    proc = converge("batch", str(rules_file), "--jobs", str(jobs), "--out", str(out), "--workers", "1",
                    "--timeout", "0.5", "--relation", "n")
    assert proc.returncode == 4, proc.stderr
    by_id = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert by_id["small"]["tier"] == "converged" and by_id["small"]["facts"]["n"] == [[0], [1], [2], [3]]
    assert by_id["runaway"]["tier"] == "bounded" and by_id["runaway"]["reasons"][0]["budget"] == "timeout"
    out2 = tmp_path / "out2.jsonl"
    proc = converge("batch", str(rules_file), "--jobs", str(jobs), "--out", str(out2), "--workers", "1",
                    "--max-bytes", "20000", "--relation", "n")
    assert proc.returncode == 4, proc.stderr
    runaway = {r["id"]: r for r in map(json.loads, out2.read_text().splitlines())}["runaway"]
    assert runaway["tier"] == "bounded" and runaway["reasons"][0]["budget"] == "max_bytes"


def test_output_is_byte_identical_for_workers_and_local_cluster(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 60)
    outputs = []
    for k, extra in enumerate((["--workers", "1"], ["--workers", "2"], ["--cluster", "local:2"])):
        out = tmp_path / f"out{k}.jsonl"
        proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--relation", "decision", *extra)
        assert proc.returncode == 5, proc.stderr  # some generated jobs hold a malformed income
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    lines = outputs[0].decode().splitlines()
    assert len(lines) == 60 and [json.loads(x)["id"] for x in lines] == sorted(json.loads(x)["id"] for x in lines)


def test_resume_after_sigkill_gives_every_job_exactly_once(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 400)
    clean = tmp_path / "clean.jsonl"
    assert converge("batch", RULES, "--jobs", str(jobs), "--out", str(clean), "--workers", "1").returncode == 5
    out = tmp_path / "out.jsonl"
    journal = Path(str(out) + ".journal")
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "converge_rules", "batch", RULES, "--jobs", str(jobs), "--out",
                             str(out), "--workers", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() or journal.exists()
    rerun = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "2")
    assert rerun.returncode == 5, rerun.stderr
    assert out.read_bytes() == clean.read_bytes()
    assert not journal.exists()
    again = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out))
    assert "(400 already done, 0 run now)" in again.stdout and out.read_bytes() == clean.read_bytes()


def test_a_torn_journal_line_is_dropped(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 10)
    clean = tmp_path / "clean.jsonl"
    converge("batch", RULES, "--jobs", str(jobs), "--out", str(clean), "--workers", "1")
    lines = clean.read_text().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    Path(str(out) + ".journal").write_text(lines[3] + lines[0] + lines[5][:40])  # killed mid-write
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert "(2 already done, 8 run now)" in proc.stdout
    assert out.read_bytes() == clean.read_bytes()


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(8))))
def test_jsonl_sink_output_does_not_depend_on_finishing_order(tmp_path_factory, order: list[int]) -> None:
    path = tmp_path_factory.mktemp("sink") / "out.jsonl"
    results = [JobResult(i if i % 3 else f"j{i}", "converged", [], 1, f"d{i}") for i in range(8)]
    sink = JsonlSink(str(path))
    for k in order:
        sink.add(results[k])
    sink.finish()
    expected = sorted(results, key=lambda r: (0, r.id) if isinstance(r.id, int) else (1, r.id))
    assert path.read_text() == "".join(r.line() for r in expected)


def test_directory_of_jobs(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "case-b").mkdir(parents=True)
    (jobs / "case-b" / "applicant.csv").write_text("a1,1000\n")
    (jobs / "case-b" / "loan.csv").write_text("l1,a1,6000\n")
    (jobs / "case-a.json").write_text('{"applicant": [["a2", 5000]], "loan": [["l2", "a2", 100]]}')
    (jobs / "notes.txt").write_text("ignored")
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--relation", "decision")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["id"], r["facts"]["decision"]) for r in records] == [("case-a", [["l2", "approve"]]),
                                                                    ("case-b", [["l1", "reject"]])]


def test_partitioned_sqlite_jobs_into_an_sqlite_sink(tmp_path: Path, rules: cr.RuleSet) -> None:
    db = tmp_path / "jobs.db"
    subprocess.run([sys.executable, str(ROOT / "examples" / "batch" / "make_loan_jobs.py"), "25", "--sqlite", str(db)],
                   check=True)
    out = tmp_path / "out.db"
    args = ["batch", RULES, "--jobs", f"sqlite:///{db}", "--partition-by", "case_id", "--out", f"sqlite:///{out}",
            "--relation", "decision", "--workers", "2"]
    proc = converge(*args)
    assert proc.returncode == 5, proc.stderr
    conn = sqlite3.connect(out)
    rows = conn.execute("SELECT id, tier, digest FROM jobs ORDER BY id").fetchall()
    assert len(rows) == 25
    expected = {j["id"]: j for j in make_jobs(25)}
    for job_id, tier, digest in rows:
        try:
            result = rules.run(expected[job_id]["facts"])
        except cr.ConvergeError:
            assert tier == "failed"
            continue
        assert (tier, digest) == (result.tier.value, result.digest)
    bad = conn.execute("SELECT diagnostics FROM jobs WHERE tier = 'failed'").fetchone()
    assert bad is not None and 'applicant[id=\\"' in bad[0] and "E502" in bad[0]
    n = conn.execute("SELECT count(*) FROM decision").fetchone()[0]
    assert n > 0
    conn.close()
    again = converge(*args)
    assert "(25 already done, 0 run now)" in again.stdout
    assert sqlite3.connect(out).execute("SELECT count(*) FROM jobs").fetchone() == (25,)


def test_bad_jobs_source_is_located(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "facts": {}}\n{"id": "b", "facts": {}\n')
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 1 and f"{jobs}:2:" in proc.stderr and "error[E530]" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.jsonl").exists()
    jobs.write_text('{"id": "a", "facts": {}}\n{"id": "a", "facts": {}}\n')
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 1 and "used twice" in proc.stderr
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(tmp_path / "o.jsonl"), "--partition-by", "x")
    assert proc.returncode == 1 and "E530" in proc.stderr
    other = tmp_path / "other.jsonl"
    other.write_text("not a result\n")
    jobs.write_text('{"id": "a", "facts": {}}\n')
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(other))
    assert proc.returncode == 1 and "E531" in proc.stderr and other.read_text() == "not a result\n"


def test_partition_lint(tmp_path: Path) -> None:
    rules_file = tmp_path / "p.cvg"
    rules_file.write_text("input relation account(case_id: str, id: str)\n"
                          "input relation payment(case_id: str, account: str, amount: int)\n"
                          "relation paid(id: str, amount: int)\nrelation crossed(id: str)\n"
                          "paid(a, n) :- account(c, a), payment(c, a, n).\n"
                          "crossed(a) :- account(_, a), payment(_, a, _).\n")
    from converge_rules.lint import check_file

    found = [d for d in check_file(str(rules_file), partition_by="case_id") if d.code == "W500"]
    assert [(d.span.line, "crossed#1" in d.message) for d in found] == [(6, True)]
    assert not [d for d in check_file(str(rules_file)) if d.code == "W500"]
    proc = converge("check", str(rules_file), "--partition-by", "case_id")
    assert proc.returncode == 0 and "warning[W500]" in proc.stdout and ":6:" in proc.stdout
    rules_file.write_text("# converge: partition-by=case_id\n" + rules_file.read_text())
    assert [d.span.line for d in check_file(str(rules_file)) if d.code == "W500"] == [7]


# `pg_url` and `pg_schema` (a schema of this xdist worker, dropped after the test) come from conftest.py.


def test_postgres_jobs_and_sink(pg_url: str, pg_schema, tmp_path: Path) -> None:
    import psycopg

    jobs = make_jobs(15)
    schema_in, schema_out = pg_schema("g_batch_in"), pg_schema("g_batch_out")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {schema_in}.applicant (case_id TEXT, id TEXT PRIMARY KEY, income TEXT)")
        conn.execute(f"CREATE TABLE {schema_in}.loan (case_id TEXT, id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER)")
        with conn.cursor() as cur:
            for j in jobs:
                cur.executemany(f"INSERT INTO {schema_in}.applicant VALUES (%s, %s, %s)",
                                [(j["id"], a, str(i)) for a, i in j["facts"]["applicant"]])
                cur.executemany(f"INSERT INTO {schema_in}.loan VALUES (%s, %s, %s, %s)",
                                [(j["id"], x["id"], x["applicant"], x["amount"]) for x in j["facts"]["loan"]])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema_out}"')  # the sink makes its schema when missing, as --store does
    # ?schema= as in a --store URL (it was refused: "invalid URI query parameter")
    sep = "&" if "?" in pg_url else "?"
    source = f"{pg_url}{sep}schema={schema_in}"
    sink = f"{pg_url}{sep}schema={schema_out}"
    proc = converge("batch", RULES, "--jobs", source, "--partition-by", "case_id", "--out", sink, "--workers", "1")
    assert proc.returncode in (0, 5), proc.stderr
    from urllib.parse import urlsplit

    password = urlsplit(pg_url).password
    if password:
        assert f":{password}@" not in proc.stdout + proc.stderr
    jsonl = tmp_path / "jobs.jsonl"
    write_jobs(jsonl, 15)
    rules = cr.load(RULES)
    expected = {r.id: r for r in rules.run_many([(j["id"], j["facts"]) for j in jobs])}
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f"SELECT id, tier, digest FROM {schema_out}.jobs ORDER BY id").fetchall()
        assert [(i, t, d) for i, t, d in rows] == [(i, expected[i].tier, expected[i].digest) for i in sorted(expected)]
        decisions = conn.execute(f"SELECT job_id, loan, outcome FROM {schema_out}.decision ORDER BY 1, 2").fetchall()
    assert decisions == sorted((i, *f) for i, r in expected.items() for f in map(tuple, r.facts.get("decision", [])))


def test_tools_reach_the_workers_and_a_tool_error_stays_in_its_job(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"id": "good", "facts": {"applicant": [["a1", 3000]], "loan": [["l1", "a1", 12000]],
                                                       "quote": [["l1", "eastfin", 4.6]]}}) + "\n"
                    + json.dumps({"id": "no-file", "facts": {"applicant": [["a3", 4000]], "loan": [["l3", "a3", 15000]],
                                                            "quote": [["l3", "southcredit", 5.5]]}}) + "\n")
    scoring = str(ROOT / "examples" / "scoring" / "scoring.cvg")
    out = tmp_path / "out.jsonl"
    proc = converge("batch", scoring, "--jobs", str(jobs), "--out", str(out), "--workers", "2",
                    "--tools", "examples.scoring.tools")
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["good"]["tier"] == "converged", records["good"]
    assert records["no-file"]["tier"] in ("degraded", "failed")
    assert "a3" in json.dumps(records["no-file"]["reasons"])
    assert proc.returncode in (3, 5)
    missing = converge("batch", scoring, "--jobs", str(jobs), "--out", str(tmp_path / "o2.jsonl"))
    assert missing.returncode == 1 and "error[E220]" in missing.stderr and not (tmp_path / "o2.jsonl").exists()


def test_many_runs_in_one_process_keep_no_garbage(rules: cr.RuleSet) -> None:
    import gc

    before = gc.get_freeze_count()
    results = list(rules.run_many([(j["id"], j["facts"]) for j in make_jobs(40)]))
    assert len(results) == 40
    assert gc.get_freeze_count() == before  # nothing moved to the permanent generation
    assert gc.isenabled()


_ALONE: dict[str, str] = {}


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(range(10)), min_size=1, max_size=10, unique=True))
def test_a_job_result_does_not_depend_on_its_batch(rules: cr.RuleSet, picked: list[int]) -> None:
    jobs = make_jobs(10)
    if not _ALONE:
        for j in jobs:  # each job alone, on a rule set of its own
            [result] = cr.load(RULES).run_many([(j["id"], j["facts"])])
            _ALONE[j["id"]] = result.line()
    batch = [(jobs[k]["id"], jobs[k]["facts"]) for k in picked]
    assert [r.line() for r in rules.run_many(batch)] == [_ALONE[i] for i, _ in batch]


def test_sqlite_sink_resumes_after_sigkill_with_each_job_once(tmp_path: Path, rules: cr.RuleSet) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    jobs = write_jobs(jobs_file, 300)
    out = tmp_path / "out.db"
    args = [sys.executable, "-m", "converge_rules", "batch", RULES, "--jobs", str(jobs_file), "--out", f"sqlite:///{out}",
            "--relation", "decision", "--workers", "1"]
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, NO_COLOR="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(out) as conn:
                if conn.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 20:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 5, rerun.stderr
    expected = list(rules.run_many([(j["id"], j["facts"]) for j in jobs], relations=["decision"]))
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT id, tier, digest FROM jobs ORDER BY id").fetchall() == \
        [(r.id, r.tier, r.digest) for r in expected]
    assert conn.execute("SELECT job_id, loan, outcome FROM decision ORDER BY 1, 2, 3").fetchall() == \
        sorted((r.id, *f) for r in expected for f in r.facts.get("decision", []))


@pytest.mark.parametrize("line", ['{"id": [1], "tier": "converged"}', '{"id": "zz", "tier": "weird"}',
                                  '{"id": 1.5, "tier": "converged"}', '{"id": true, "tier": "converged"}',
                                  '{"id": "a", "tier": ["converged"]}'])
def test_an_output_line_that_is_not_a_batch_result_is_refused(tmp_path: Path, line: str) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 3)
    out = tmp_path / "out.jsonl"
    out.write_text(line + "\n")
    with pytest.raises(cr.ConvergeError) as caught:
        JsonlSink(str(out))
    assert caught.value.diagnostics[0].code == "E531"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    assert f"error[E531]: {out}:1 is not a batch result" in proc.stderr and "internal error" not in proc.stderr
    assert out.read_text() == line + "\n" and not Path(str(out) + ".journal").exists()


@pytest.mark.parametrize("values", [(1, "1"), (None, "null"), ("2.5", 2.5)])
def test_partition_values_that_give_one_job_id_are_refused(tmp_path: Path, values: tuple) -> None:
    db = tmp_path / "jobs.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE applicant (id TEXT, income INTEGER, case_id)")
    conn.execute("CREATE TABLE loan (id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER, case_id)")
    conn.executemany("INSERT INTO applicant VALUES (?, ?, ?)", [("a1", 1000, values[0]), ("a9", 9000, 7)])
    conn.executemany("INSERT INTO loan VALUES (?, ?, ?, ?)", [("l1", "a1", 100, values[1]), ("l9", "a9", 1, 7)])
    conn.commit()
    conn.close()
    from converge_rules.batch import iter_jobs

    with pytest.raises(cr.ConvergeError) as caught:
        list(iter_jobs(f"sqlite:///{db}", cr.load(RULES).program.schema(), "case_id"))
    (diag,) = caught.value.diagnostics
    assert diag.code == "E530" and diag.span.file == f"sqlite:///{db}:loan[id=\"l1\"]"
    assert f"as the value {'NULL' if values[0] is None else repr(values[0])} at sqlite:///{db}:applicant[rowid=1]" \
        in diag.message
    for out in (tmp_path / "out.jsonl", tmp_path / "out.db"):
        target = str(out) if out.suffix == ".jsonl" else f"sqlite:///{out}"
        proc = converge("batch", RULES, "--jobs", f"sqlite:///{db}", "--partition-by", "case_id", "--out", target,
                        "--workers", "1")
        assert proc.returncode == 1 and "error[E530]" in proc.stderr and "internal error" not in proc.stderr
        assert not out.exists()  # nothing ran, nothing was written


KILLER = '''import os


def die(x):
    if x == "die":
        os._exit(9)  # the worker process ends, as when it is killed or runs out of memory
    return 1
'''
KILLER_RULES = '''input relation item(x: str)
relation ok(x: str, v: int)
ok(x, v) :- item(x), v = @die(x).
'''


@pytest.mark.parametrize("where", [["--workers", "2"], ["--cluster", "local:2"]])
def test_a_worker_that_dies_stops_the_batch_with_e533_and_a_rerun_resumes(tmp_path: Path, where: list[str]) -> None:
    (tmp_path / "batch_killer.py").write_text(KILLER)
    rules = tmp_path / "k.cvg"
    rules.write_text(KILLER_RULES)
    jobs = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"id": i, "facts": {"item": [[f"a{i}"]]}}) for i in range(1, 41)]
    jobs.write_text("\n".join(lines + ['{"id": 41, "facts": {"item": [["die"]]}}']) + "\n")
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    cmd = [sys.executable, "-m", "converge_rules", "batch", str(rules), "--jobs", str(jobs), "--out", str(out),
           "--tools", "batch_killer", *where]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert "<batch>: error[E533]: a worker process died" in proc.stderr and "41" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "distributed." not in proc.stderr  # Dask's own log lines do not repeat what E533 says
    assert not out.exists()  # no final output: the journal keeps the jobs that finished
    kept = [json.loads(x)["id"] for x in Path(str(out) + ".journal").read_text().splitlines()]
    assert 41 not in kept and len(kept) == len(set(kept)) and set(kept) <= set(range(1, 41))
    jobs.write_text("\n".join(lines) + "\n")  # without the job that ends its worker, a rerun finishes
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == list(range(1, 41))


def test_run_many_raises_e533_when_a_pool_worker_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "batch_killer.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned workers get this sys.path
    import batch_killer

    (tmp_path / "k.cvg").write_text(KILLER_RULES)
    rules = cr.load(str(tmp_path / "k.cvg"))
    jobs = [(1, {"item": [["a"]]}), (2, {"item": [["die"]]})]
    with pytest.raises(cr.ConvergeError) as caught:
        list(rules.run_many(jobs, workers=2, tools={"die": batch_killer.die}))
    (diag,) = caught.value.diagnostics
    assert diag.code == "E533" and "jobs 1, 2" in diag.message


def test_an_sqlite_sink_never_writes_into_a_table_of_other_columns(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 3)
    for n, create in enumerate(["CREATE TABLE decision (note TEXT, loan TEXT)", "CREATE TABLE jobs (name TEXT)"]):
        db = tmp_path / f"other{n}.db"
        conn = sqlite3.connect(db)
        conn.execute(create)
        conn.commit()
        conn.close()
        before = sqlite3.connect(db).execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        proc = converge("batch", RULES, "--jobs", str(jobs), "--out", f"sqlite:///{db}", "--relation", "decision",
                        "--workers", "1")
        assert proc.returncode == 1 and "error[E531]" in proc.stderr and "already has a table" in proc.stderr
        assert "internal error" not in proc.stderr
        assert sqlite3.connect(db).execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == before
    with pytest.raises(cr.ConvergeError) as caught:
        from converge_rules.batch.sinks import open_sink

        open_sink(f"sqlite:///{tmp_path / 'other0.db'}", cr.load(RULES).program.schema(), ["decision"])
    assert caught.value.diagnostics[0].code == "E531"
    assert "a table 'decision' with the columns (note, loan), not those of batch results (job_id, loan, outcome)" \
        in caught.value.diagnostics[0].message


def test_a_postgres_sink_never_writes_into_a_table_of_other_columns(pg_url: str, pg_schema, tmp_path: Path) -> None:
    import psycopg

    out = pg_schema("g_batch_foreign")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {out}.decision (note TEXT, loan TEXT)")
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 3)
    sep = "&" if "?" in pg_url else "?"
    sink = f"{pg_url}{sep}options=-csearch_path%3D{out}"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", sink, "--relation", "decision", "--workers", "1")
    assert proc.returncode == 1 and "error[E531]" in proc.stderr and "already has a table 'decision'" in proc.stderr
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (out,)).fetchall()
    assert tables == [("decision",)]  # nothing created, nothing written
    fresh = pg_schema("g_batch_fresh")  # and a batch's own tables are found again on a rerun
    sink = f"{pg_url}{sep}options=-csearch_path%3D{fresh}"
    for expected in ("3 jobs", "(3 already done, 0 run now)"):
        proc = converge("batch", RULES, "--jobs", str(jobs), "--out", sink, "--relation", "decision", "--workers", "1")
        assert proc.returncode in (0, 5) and expected in proc.stdout, proc.stderr


SLOW = '''import time


def slow(x):
    time.sleep(float(x))
    return 1
'''


def _children(pid: int) -> list[int]:
    found = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                                            text=True).stdout.split()]
    return found + [g for k in found for g in _children(k)]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_pool_workers_end_with_a_killed_batch_and_a_rerun_finishes(tmp_path: Path, sig: int) -> None:
    (tmp_path / "batch_slow.py").write_text(SLOW)
    rules = tmp_path / "s.cvg"
    rules.write_text("input relation item(x: str)\nrelation ok(x: str, v: int)\nok(x, v) :- item(x), v = @slow(x).\n")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": i, "facts": {"item": [["0.02"]]}}) + "\n" for i in range(300)))
    out = tmp_path / "out.jsonl"
    journal = Path(str(out) + ".journal")
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    cmd = [sys.executable, "-m", "converge_rules", "batch", str(rules), "--jobs", str(jobs), "--out", str(out),
           "--tools", "batch_slow", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and journal.read_bytes().count(b"\n") >= 40):
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(map(_running, workers)):
        time.sleep(0.05)
    left = [w for w in workers if _running(w)]
    for w in left:  # never leave them behind, even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, "pool workers outlived the killed batch"
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and "run now)" in rerun.stdout, rerun.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == list(range(300))


def test_a_lone_surrogate_in_a_job_fails_that_job_alone_and_every_sink_writes_it(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "bad", "facts": {"applicant": [["\\ud800", 1000]]}}\n'
                    '{"id": "good", "facts": {"applicant": [["a1", 1000]], "loan": [["l1", "a1", 100]]}}\n')
    (result_bad, result_good) = cr.load(RULES).run_many([("bad", {"applicant": [["\ud800", 1000]]}), ("good", {})])
    assert result_bad.tier == "failed" and result_good.tier == "converged"
    assert '"\\ud800" is not valid Unicode' in result_bad.diagnostics[0]["message"]
    result_bad.line().encode("utf-8")  # valid Unicode: every sink can write it
    for out in (tmp_path / "out.jsonl", tmp_path / "out.db"):
        target = str(out) if out.suffix == ".jsonl" else f"sqlite:///{out}"
        proc = converge("batch", RULES, "--jobs", str(jobs), "--out", target, "--workers", "1")
        assert proc.returncode == 5 and "1 converged" in proc.stdout and "1 failed" in proc.stdout, proc.stderr
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["tier"]) for r in records] == [("bad", "failed"), ("good", "converged")]
    assert records[0]["diagnostics"][0]["code"] == "E502" and "\\ud800" in records[0]["diagnostics"][0]["message"]
    jobs.write_text('{"id": "\\udc00", "facts": {}}\n')
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(tmp_path / "o2.jsonl"), "--workers", "1")
    assert proc.returncode == 1 and f"{jobs}:1:1: error[E530]" in proc.stderr and "lone surrogate" in proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "fifo journal"])
def test_an_out_that_is_not_a_regular_file_is_refused_before_any_job_runs(tmp_path: Path, kind: str) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 2)
    out = "/dev/null" if kind == "device" else str(tmp_path / "out.jsonl")
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "directory":
        os.mkdir(out)
    elif kind == "fifo journal":
        os.mkfifo(out + ".journal")
    before = sorted(os.listdir(os.path.dirname(out)))
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", out, "--workers", "1")  # a FIFO used to hang here
    assert proc.returncode == 1 and "error[E531]" in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
    assert "jobs:" not in proc.stdout  # refused before any job ran
    assert sorted(os.listdir(os.path.dirname(out))) == before  # no journal left anywhere (not even /dev/null.journal)


def test_a_job_directory_entry_whose_name_is_not_utf8_is_e530(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "good.json").write_text('{"applicant": [["a1", 1000]]}')
    with open(os.path.join(os.fsencode(jobs), b"\xffbad.json"), "w") as handle:
        handle.write('{"applicant": [["a2", 1000]]}')
    from converge_rules.batch import iter_jobs

    with pytest.raises(cr.ConvergeError) as caught:
        list(iter_jobs(str(jobs)))
    assert caught.value.diagnostics[0].code == "E530"
    assert "the name of the job b'\\xffbad.json' is not valid UTF-8" in caught.value.diagnostics[0].message
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 1 and "error[E530]" in proc.stderr and "internal error" not in proc.stderr
    assert not out.exists() and not Path(str(out) + ".journal").exists()


def test_an_out_that_cannot_be_written_is_e507_before_any_job_runs(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 2)
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", "/proc/converge-out.jsonl", "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    assert "error[E507]: cannot write /proc/converge-out.jsonl.journal" in proc.stderr
    assert "Traceback" not in proc.stderr and "jobs:" not in proc.stdout
    out = tmp_path / "out.jsonl"  # stopped before any job finished: no empty journal is left behind
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--cluster", "nohost")
    assert proc.returncode == 1 and "error[E532]" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["jobs.jsonl"]


def test_out_dash_is_e507_before_any_job_runs_and_leaves_nothing(tmp_path: Path) -> None:
    """`--out -` is refused like every output option's `-` (docs/diagnostics.md, E507), before a
    job runs: no `-.journal` is left behind in the working directory."""
    from converge_rules.batch.sinks import open_sink

    work = tmp_path / "work"
    work.mkdir()
    jobs = tmp_path / "jobs.jsonl"
    write_jobs(jobs, 2)
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", "-", "--workers", "1", cwd=work)
    assert proc.returncode == 1 and "error[E507]: refusing to write a file named '-'" in proc.stderr, proc.stderr
    assert "jobs:" not in proc.stdout and os.listdir(work) == []
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with pytest.raises(cr.ConvergeError) as caught:
            open_sink("-", cr.load(RULES).program.schema(), ["decision"])
    finally:
        os.chdir(cwd)
    assert caught.value.diagnostics[0].code == "E507" and os.listdir(work) == []


def test_a_journal_write_that_fails_is_e507_and_keeps_what_was_written(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from converge_rules.batch import sinks

    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.add(JobResult("a", "converged", [], 1, "d1"))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sinks.os, "fsync", full)
    with pytest.raises(cr.ConvergeError) as caught:
        sink.add(JobResult("b", "converged", [], 1, "d2"))
    assert caught.value.diagnostics[0].code == "E507" and "no space left on device" in str(caught.value)
    sink.close()
    monkeypatch.undo()
    assert set(JsonlSink(str(path)).done()) == {"a", "b"}  # "b" reached the file; a torn line would be dropped


def test_a_relation_a_database_sink_cannot_hold_is_e531_before_any_job_runs(tmp_path: Path) -> None:
    rules = tmp_path / "r.cvg"
    rules.write_text('input relation item(x: str)\nrelation jobs(id: str)\nrelation r(job_id: str)\n'
                     'jobs(x) :- item(x).\nr(x) :- item(x).\n')
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "facts": {"item": [["q"]]}}\n')
    for rel, problem in (("r", "it has a column job_id, the column a batch adds"),
                         ("jobs", "its name is that of the batch's table of jobs")):
        db = tmp_path / f"{rel}.db"
        proc = converge("batch", str(rules), "--jobs", str(jobs), "--out", f"sqlite:///{db}", "--relation", rel,
                        "--workers", "1")
        assert proc.returncode == 1 and f"error[E531]: cannot write relation '{rel}'" in proc.stderr, proc.stderr
        assert problem in proc.stderr and "jobs:" not in proc.stdout
        assert sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall() == []
    out = tmp_path / "out.jsonl"  # a JSON Lines sink holds them
    proc = converge("batch", str(rules), "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 0 and json.loads(out.read_text())["facts"] == {"jobs": [["q"]], "r": [["q"]]}


@pytest.mark.parametrize("option", [["--workers", "257"], ["--cluster", "local:99999999999"], ["--cluster", "local:0"]])
def test_a_local_worker_count_beyond_the_limit_is_a_usage_error(option: list[str], tmp_path: Path) -> None:
    """`--cluster local:99999999999` tried to start that many processes and hung; N is at most 256."""
    write_jobs(tmp_path / "jobs.jsonl", 2)
    out = tmp_path / "out.jsonl"
    proc = converge("batch", "examples/loans/loans.cvg", "--jobs", str(tmp_path / "jobs.jsonl"), "--out", str(out),
                    *option, "-q")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "256" in proc.stderr and not out.exists()


@pytest.mark.parametrize("line, col, key", [
    ('{"id": "b", "facts": {"loan": [["l1", "a1", 5]], "loan": []}}', 50, '"loan"'),
    ('{"id": "b", "facts": {"loan": [{"id": "l1", "applicant": "a1", "amount": 5, "amount": 7}]}}', 77, '"amount"'),
    ('{"id": "b", "id": "c", "facts": {}}', 13, '"id"'),
    ('{"id": "b", "facts": {"loan": []}, "facts": {}}', 36, '"facts"'),
])
def test_a_key_given_twice_in_a_job_line_is_e530_not_a_job_with_facts_missing(
        tmp_path: Path, line: str, col: int, key: str) -> None:
    """JSON keeps only the last value of a repeated key: a job line with a relation (or a column, an
    id, its facts) twice ran on the last one alone -- loans silently missing, or another job id --
    while a facts file with the same object is refused (E501/E505). Now the jobs source is refused,
    located at the repeated key, before any job runs."""
    from converge_rules.batch import iter_jobs

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "facts": {"loan": [["l0", "a0", 5]]}}\n' + line + "\n")
    with pytest.raises(cr.ConvergeError) as caught:
        list(iter_jobs(str(jobs)))
    diag = caught.value.diagnostics[0]
    assert (diag.code, diag.span.line, diag.span.col) == ("E530", 2, col), diag.render()
    assert f"key {key} appears twice" in diag.message
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 1 and f"{jobs}:2:{col}: error[E530]" in proc.stderr, proc.stderr
    assert "jobs:" not in proc.stdout and not out.exists() and not Path(str(out) + ".journal").exists()


def test_an_int_of_any_size_in_a_job_line_is_read_as_in_facts_files(tmp_path: Path, rules: cr.RuleSet) -> None:
    """An int of more than 4300 digits (CPython's limit for int()) in a job line was
    "internal error: ValueError: Exceeds the limit" with no output; a facts file reads it (docs/facts.md)."""
    big, big_id = 10 ** 5000 - 1, 7 * (10 ** 4500 - 1) // 9  # 5000 nines, 4500 sevens
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "facts": {"applicant": [["a1", 10]], "loan": [["l1", "a1", ' + "9" * 5000 + ']]}}\n'
                    '{"id": ' + "7" * 4500 + ', "facts": {}}\n')
    from converge_rules.batch import iter_jobs

    found = list(iter_jobs(str(jobs)))
    assert found[0].facts["loan"] == [["l1", "a1", big]] and found[1].id == big_id
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1", "--relation", "decision")
    assert proc.returncode == 0 and "internal error" not in proc.stderr, proc.stderr
    from converge_rules.values import loads_json

    results = [loads_json(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in results] == [big_id, "a"]  # integers first, by value
    facts = {"applicant": [["a1", 10]], "loan": [["l1", "a1", big]]}
    assert results[1]["digest"] == rules.run(facts).digest and results[1]["facts"]["decision"] == [["l1", "reject"]]
    # resuming reads those results back (they were "not a batch result", E531): nothing runs again
    written = out.read_bytes()
    again = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1", "--relation", "decision")
    assert again.returncode == 0 and "(2 already done, 0 run now)" in again.stdout, again.stderr
    assert out.read_bytes() == written
    db = tmp_path / "out.db"
    for _ in range(2):  # a database sink, then resumed
        proc = converge("batch", RULES, "--jobs", str(jobs), "--out", f"sqlite:///{db}", "--workers", "1",
                        "--relation", "decision")
        assert proc.returncode == 0 and "internal error" not in proc.stderr, proc.stderr
    assert "(2 already done, 0 run now)" in proc.stdout
    rows = sqlite3.connect(db).execute("SELECT id, tier FROM jobs ORDER BY id").fetchall()
    assert sorted(rows) == sorted([("7" * 4500, "converged"), ("a", "converged")])


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_jobs_source_that_is_not_a_regular_file_is_e530_not_a_hang(tmp_path: Path, kind: str) -> None:
    """`--jobs FIFO` blocked for ever waiting for a writer, and `--jobs /dev/zero` read one endless
    line into memory until the machine ran out; `run --facts` refuses both (E500). Now E530 at once."""
    from converge_rules.batch import iter_jobs

    if kind == "fifo":
        source = str(tmp_path / "jobs.jsonl")
        os.mkfifo(source)
        what = "a FIFO"
    else:
        source, what = "/dev/zero", "a character device"
    caught: list[BaseException] = []

    def read() -> None:
        try:
            list(iter_jobs(source))
        except BaseException as err:  # noqa: BLE001 - the test looks at it below
            caught.append(err)

    reader = threading.Thread(target=read, daemon=True)  # a hang fails the test instead of hanging it
    reader.start()
    reader.join(30)
    assert not reader.is_alive() and len(caught) == 1 and isinstance(caught[0], cr.ConvergeError)
    diag = caught[0].diagnostics[0]
    assert diag.code == "E530" and f"it is {what}, not a regular file" in diag.message, diag.message
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", source, "--out", str(out), "--workers", "1")  # times out at 180 s
    assert proc.returncode == 1 and "error[E530]" in proc.stderr and what in proc.stderr, proc.stderr
    assert not out.exists() and not Path(str(out) + ".journal").exists()


def test_a_jobs_file_that_starts_with_a_byte_order_mark_is_read_as_a_facts_file_is(tmp_path: Path,
                                                                                    rules: cr.RuleSet) -> None:
    """An editor's UTF-8 byte order mark before the first job was "malformed job: Unexpected UTF-8 BOM
    (decode using utf-8-sig)", E530, while `run --facts` reads the same JSON Lines with it (a BOM is
    no text). Positions on the first line are counted without it."""
    from converge_rules.batch import iter_jobs

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_bytes(b'\xef\xbb\xbf{"id": "a", "facts": {"applicant": [["a1", 10]], "loan": [["l1", "a1", 6000]]}}\n'
                     b'{"id": "b", "facts": {}}\n')
    assert [j.id for j in iter_jobs(str(jobs))] == ["a", "b"]
    out = tmp_path / "out.jsonl"
    proc = converge("batch", RULES, "--jobs", str(jobs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"] == "a" and first["digest"] == rules.run({"applicant": [["a1", 10]],
                                                               "loan": [["l1", "a1", 6000]]}).digest
    jobs.write_bytes(b'\xef\xbb\xbf{"id": "a", "id": "b", "facts": {}}\n')
    with pytest.raises(cr.ConvergeError) as caught:
        list(iter_jobs(str(jobs)))
    assert (caught.value.diagnostics[0].span.line, caught.value.diagnostics[0].span.col) == (1, 13)
