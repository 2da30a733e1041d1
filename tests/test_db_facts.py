"""Input facts from SQLite and PostgreSQL (``--facts sqlite:///...``, ``--facts postgresql://...``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.io.database import DatabaseFacts, check_select, redact

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"
RULES = str(LOANS / "loans.cvg")
FACTS = json.loads((LOANS / "facts.json").read_text())


def converge(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def make_sqlite(path: Path, income_override: object = None) -> str:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE applicant (id TEXT PRIMARY KEY, income INTEGER)")
    conn.execute("CREATE TABLE loan (id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER, note TEXT)")
    rows = [list(r) for r in FACTS["applicant"]]
    if income_override is not None:
        rows[1][1] = income_override
    conn.executemany("INSERT INTO applicant VALUES (?, ?)", rows)
    conn.executemany("INSERT INTO loan VALUES (?, ?, ?, 'x')", [(l["id"], l["applicant"], l["amount"]) for l in FACTS["loan"]])
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def json_digest() -> str:
    return cr.load(RULES).run(fact_files=[str(LOANS / "facts.json")]).digest


def test_sqlite_gives_the_same_digest_as_the_json_facts(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "loans.db")
    result = cr.load(RULES).run(fact_files=[url])
    assert result.digest == json_digest()
    assert result.tier.value == "converged"
    proc = converge("run", RULES, "--facts", url, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == json_digest()


def test_why_names_the_table_and_key(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "loans.db")
    proc = converge("why", RULES, "--facts", url, 'decision("l1", "reject")')
    assert proc.returncode == 0, proc.stderr
    assert f'input, {url}:loan[id="l1"]' in proc.stdout
    assert f'input, {url}:applicant[id="a1"]' in proc.stdout
    proof = cr.load(RULES).run(fact_files=[url]).proof("applicant", ("a1", 1000))
    assert proof is not None and proof.source == (f'{url}:applicant[id="a1"]', 0)


def test_rowid_keys_a_table_without_primary_key(tmp_path: Path) -> None:
    path = tmp_path / "edges.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE edge (a TEXT, b TEXT)")
    conn.executemany("INSERT INTO edge VALUES (?, ?)", [("x", "y"), ("y", "z")])
    conn.commit()
    conn.close()
    rules = cr.load_text("input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n"
                         "path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n")
    result = rules.run(fact_files=[f"sqlite:///{path}"])
    assert result.facts("path") == [("x", "y"), ("x", "z"), ("y", "z")]
    assert result.proof("edge", ("y", "z")).source == (f"sqlite:///{path}:edge[rowid=2]", 0)


def test_a_bad_value_names_table_key_and_column(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "bad.db", income_override="lots")
    with pytest.raises(cr.ConvergeError) as info:
        cr.load(RULES).run(fact_files=[url])
    [d] = info.value.diagnostics
    assert d.code == "E502"
    assert d.span.file == f'{url}:applicant[id="a2"]'
    assert 'column "income" of applicant' in d.message and '"lots"' in d.message
    proc = converge("run", RULES, "--facts", url)
    assert proc.returncode == 1
    assert f'{url}:applicant[id="a2"]: error[E502]' in proc.stderr and "Traceback" not in proc.stderr


def test_null_and_blob_values_do_not_convert(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, x)")
    conn.executemany("INSERT INTO p VALUES (?, ?)", [(1, None), (2, b"\x00\x01"), (3, 7)])
    conn.commit()
    conn.close()
    rules = cr.load_text("input relation p(id: int, x: int)\n")
    with pytest.raises(cr.ConvergeError) as info:
        rules.run(fact_files=[f"sqlite:///{path}"])
    messages = [(d.span.file.rsplit(":", 1)[1], d.message) for d in info.value.diagnostics]
    assert messages == [("p[id=1]", 'column "x" of p: NULL is not a valid int'),
                        ("p[id=2]", 'column "x" of p: a blob of 2 bytes is not a valid int')]


def test_table_queries_and_select_only(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "loans.db")
    source = DatabaseFacts(url, {"loan": "SELECT id, applicant, amount * 10 AS amount FROM loan"})
    result = cr.load(RULES).run(fact_files=[source])
    assert ("l1", "a1", 60000) in result.facts("loan")
    assert result.proof("loan", ("l1", "a1", 60000)).source == (f"{url}:query(loan)[row 1]", 0)
    proc = converge("run", RULES, "--facts", url, "--table", "loan=DELETE FROM loan")
    assert proc.returncode == 1 and "error[E521]" in proc.stderr, proc.stderr
    for bad in ("SELECT 1; DROP TABLE loan", "WITH x AS (DELETE FROM loan RETURNING *) SELECT * FROM x",
                "UPDATE loan SET amount = 0"):
        with pytest.raises(cr.ConvergeError) as info:
            cr.load(RULES).run(fact_files=[DatabaseFacts(url, {"loan": bad})])
        assert [d.code for d in info.value.diagnostics] == ["E521"], bad
    assert sqlite3.connect(tmp_path / "loans.db").execute("SELECT count(*) FROM loan").fetchone() == (8,)
    assert check_select("-- a comment\nselect 1", "x") is None
    assert check_select("SELECT ';' AS semicolon", "x") is None
    with pytest.raises(cr.ConvergeError) as info:
        cr.load(RULES).run(fact_files=[DatabaseFacts(url, {"nosuch": "SELECT 1"})])
    assert [d.code for d in info.value.diagnostics] == ["E503"]
    proc = converge("run", RULES, "--facts", str(LOANS / "facts.json"), "--table", "loan=SELECT 1")
    assert proc.returncode == 2 and "--table needs a database" in proc.stderr


def test_missing_database_and_missing_column(tmp_path: Path) -> None:
    proc = converge("run", RULES, "--facts", f"sqlite:///{tmp_path}/nope.db")
    assert proc.returncode == 1 and "error[E520]" in proc.stderr and "no such database file" in proc.stderr
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE applicant (id TEXT PRIMARY KEY, salary INTEGER)")
    conn.commit()
    conn.close()
    proc = converge("run", RULES, "--facts", f"sqlite:///{path}")
    assert proc.returncode == 1 and "error[E505]" in proc.stderr and 'missing column "income"' in proc.stderr


def test_postgres_facts_without_psycopg_is_e520_not_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/facts.md: PostgreSQL needs psycopg (the batch extra). Without it, facts from a
    postgresql:// URL (run, why, batch --jobs) are E520 with the install hint, exit 1, never
    "internal error" (exit 70), and nothing is tried on the network."""
    url = "postgresql://nobody@127.0.0.1:1/nothing"
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    with pytest.raises(cr.ConvergeError) as err:
        cr.load(RULES).run(fact_files=[url])
    [diag] = err.value.diagnostics
    assert diag.code == "E520" and "psycopg" in diag.message and "converge-rules[batch]" in " ".join(diag.notes)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "psycopg.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=f"{shadow}{os.pathsep}{ROOT}")
    for args in (["run", RULES, "--facts", url], ["why", RULES, "--facts", url, 'decision("l1", "reject")'],
                 ["batch", RULES, "--jobs", url, "--partition-by", "case_id", "--out", str(tmp_path / "o.jsonl"),
                  "--workers", "1"]):
        proc = subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "error[E520]" in proc.stderr and "psycopg package is not installed" in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr and "pip install 'converge-rules[batch]'" in proc.stderr


def test_redact_drops_passwords() -> None:
    assert redact("postgresql://u:s3cret@h:5432/db?password=x&sslmode=require") == "postgresql://u@h:5432/db?sslmode=require"
    assert redact("sqlite:///rel/a.db") == "sqlite:///rel/a.db"
    assert "s3cret" not in str(DatabaseFacts("postgresql://u:s3cret@h/db")) + repr(DatabaseFacts("postgresql://u:s3cret@h/db"))


# ------------------------------------------------------------------ PostgreSQL

# `pg_url` and `pg_schema` (a schema of this xdist worker, dropped after the test) come from conftest.py.


def _pg_schema(url: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {schema}.applicant (id TEXT PRIMARY KEY, income NUMERIC)")
        conn.execute(f"CREATE TABLE {schema}.loan (id TEXT PRIMARY KEY, applicant TEXT, amount BIGINT)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.applicant VALUES (%s, %s)", FACTS["applicant"])
            cur.executemany(f"INSERT INTO {schema}.loan VALUES (%s, %s, %s)",
                            [(l["id"], l["applicant"], l["amount"]) for l in FACTS["loan"]])
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def test_postgres_same_digest_and_keys_and_no_password(pg_url: str, pg_schema, tmp_path: Path) -> None:
    url = _pg_schema(pg_url, pg_schema("g_facts"))
    result = cr.load(RULES).run(fact_files=[url])
    assert result.digest == json_digest()
    assert result.proof("loan", ("l1", "a1", 6000)).source[0].endswith(':loan[id="l1"]')
    trace = tmp_path / "t.jsonl"
    proc = converge("run", RULES, "--facts", url, "--format", "json", "--proofs", "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == json_digest()
    from urllib.parse import urlsplit

    password = urlsplit(pg_url).password
    if password:
        for text in (proc.stdout, proc.stderr, trace.read_text(), converge("why", RULES, "--facts", url, 'decision("l1", "reject")').stdout):
            assert f":{password}@" not in text and "password=" not in text
    # ?schema=NAME, as in a --store URL, reads that schema's tables; a schema that is not there is E520
    sep = "&" if "?" in pg_url else "?"
    schema = url.rsplit("%3D", 1)[1]
    assert cr.load(RULES).run(fact_files=[f"{pg_url}{sep}schema={schema}"]).digest == json_digest()
    proc = converge("run", RULES, "--facts", f"{pg_url}{sep}schema=no_such_schema_here")
    assert proc.returncode == 1 and "error[E520]" in proc.stderr and "there is no schema 'no_such_schema_here'" in proc.stderr
    proc = converge("run", RULES, "--facts", f"{pg_url}{sep}schema=bad-name")
    assert proc.returncode == 1 and "bad schema name 'bad-name'" in proc.stderr, proc.stderr
    bad = pg_url.replace(f":{password}@", ":wrong-password@") if password else pg_url.replace("://", "://nobody@")
    proc = converge("run", RULES, "--facts", bad)
    assert proc.returncode == 1 and "error[E520]" in proc.stderr and "wrong-password" not in proc.stderr


def test_postgres_queries_are_read_only(pg_url: str, pg_schema) -> None:
    schema = pg_schema("g_ro")
    url = _pg_schema(pg_url, schema)
    proc = converge("run", RULES, "--facts", url, "--table", "loan=SELECT id, applicant, amount FROM loan WHERE amount > 8000")
    assert proc.returncode == 0, proc.stderr
    proc = converge("run", RULES, "--facts", url, "--table",
                    "loan=WITH d AS (DELETE FROM loan RETURNING *) SELECT id, applicant, amount FROM d")
    assert proc.returncode == 1 and "E521" in proc.stderr
    # a function that writes is stopped by the read-only transaction
    proc = converge("run", RULES, "--facts", url, "--table",
                    "loan=SELECT id, applicant, amount FROM loan, LATERAL (SELECT setval('g_seq_missing', 1)) s")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    import psycopg

    with psycopg.connect(pg_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.loan").fetchone() == (8,)


def test_replay_and_verify_read_the_database_again(tmp_path: Path) -> None:
    url = make_sqlite(tmp_path / "loans.db")
    trace, result = tmp_path / "t.jsonl", tmp_path / "r.json"
    proc = converge("run", RULES, "--facts", url, "--table", "loan=SELECT id, applicant, amount FROM loan WHERE amount > 5000",
                    "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr
    header = json.loads(trace.read_text().splitlines()[0])
    assert header["facts"] == [{"path": url, "sha256": None,
                                "tables": [["loan", "SELECT id, applicant, amount FROM loan WHERE amount > 5000"]]}]
    proc = converge("replay", str(trace))
    assert proc.returncode == 0 and "replay identical" in proc.stdout, proc.stderr
    conn = sqlite3.connect(tmp_path / "loans.db")
    conn.execute("UPDATE loan SET amount = 99999 WHERE id = 'l6'")
    conn.commit()
    conn.close()
    assert converge("replay", str(trace)).returncode == 7
    result.write_text(converge("run", RULES, "--facts", url, "--format", "json", "--proofs").stdout)
    proc = converge("verify", str(result))
    assert proc.returncode == 0 and "verified" in proc.stdout, proc.stderr


def test_converge_test_runs_every_test_over_database_facts(tmp_path: Path) -> None:
    """`converge test --facts sqlite:///...`: the database's facts lie under each test's given facts."""
    rules = tmp_path / "r.cvg"
    rules.write_text('input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n'
                     'path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n\n'
                     'test "a chain from the database" {\n  given { edge("c", "d"). }\n  expect { path("a", "d"). }\n}\n')
    db = tmp_path / "e.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE edge (a TEXT, b TEXT)")
    con.executemany("INSERT INTO edge VALUES (?, ?)", [("a", "b"), ("b", "c")])
    con.commit()
    con.close()
    alone = subprocess.run([sys.executable, "-m", "converge_rules", "test", str(rules)], capture_output=True, text=True)
    assert alone.returncode == 1 and "expected fact missing" in alone.stdout
    over = subprocess.run([sys.executable, "-m", "converge_rules", "test", str(rules), "--facts", f"sqlite:///{db}"],
                          capture_output=True, text=True)
    assert over.returncode == 0, over.stdout + over.stderr
    assert "1 passed" in over.stdout
    from converge_rules.testing.runner import run_paths

    report = run_paths([str(rules)], base_facts=[f"sqlite:///{db}"])
    assert [o.passed for o in report.outcomes] == [True]
