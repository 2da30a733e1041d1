"""Determinism across processes: `python -m converge_rules run` on generated programs.

The same job must print byte-identical JSON whatever PYTHONHASHSEED is, the
order of the facts in the facts file, and the order of the rule files on the
command line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import converge_rules as cr  # noqa: E402
import strategies  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def cli(rule_files, facts_file, hashseed: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONHASHSEED"] = hashseed
    cmd = [sys.executable, "-m", "converge_rules", "run", *map(str, rule_files),
           "--facts", str(facts_file), "--format", "json"]
    return subprocess.run(cmd, capture_output=True, env=env, cwd=str(REPO), timeout=120)


@settings(max_examples=int(os.environ.get("CVG_CLI_EXAMPLES", "3")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs(max_derived=5), st.randoms(use_true_random=False))
def test_cli_output_is_byte_identical(ir, rnd):
    a_text, b_text = strategies.render_split(ir)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        a, b = d / "a_part.cvg", d / "b_part.cvg"
        a.write_text(a_text, encoding="utf-8")
        b.write_text(b_text, encoding="utf-8")
        facts1, facts2 = d / "facts1.json", d / "facts2.json"
        facts1.write_text(strategies.render_facts_json(ir), encoding="utf-8")
        facts2.write_text(strategies.render_facts_json(ir, strategies.shuffled_facts(rnd, ir)), encoding="utf-8")

        runs = {
            "seed0 A,B facts1": cli([a, b], facts1, "0"),
            "seed1 B,A facts2": cli([b, a], facts2, "1"),
            "seedR A,B facts2": cli([a, b], facts2, str(random.randint(2, 2**32 - 1))),
            "seedR B,A facts1": cli([b, a], facts1, "random"),
        }
        info = f"--- {a.name} ---\n{a_text}--- {b.name} ---\n{b_text}--- facts ---\n{ir.facts!r}"
        for name, proc in runs.items():
            assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr.decode()}\n{info}"
        outputs = {name: proc.stdout for name, proc in runs.items()}
        base = outputs["seed0 A,B facts1"]
        for name, out in outputs.items():
            assert out == base, f"{name} differs from seed0 A,B facts1\n{info}"

        doc = json.loads(base)
        # the CLI prints what the API's to_json() gives, digest included
        rs = cr.load([str(a), str(b)])
        result = rs.run(facts=ir.facts_dict())
        assert result.tier == "converged", info
        assert base.decode("utf-8").strip() == result.to_json().strip(), info
        assert result.digest in base.decode("utf-8"), info
        assert isinstance(doc, dict), info


@settings(max_examples=int(os.environ.get("CVG_CLI_EXAMPLES", "3")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs(), st.randoms(use_true_random=False))
def test_trace_bytes_do_not_depend_on_hash_seed_input_order_or_workers(ir, rnd):
    """The JSON Lines trace is part of the result: identical across PYTHONHASHSEED,
    worker counts and input order (the header names the facts file's SHA-256, so
    for a reordered file everything after the header must match)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rules = d / "rules.cvg"
        rules.write_text(strategies.render(ir), encoding="utf-8")
        facts1, facts2 = d / "facts1.json", d / "facts2.json"
        facts1.write_text(strategies.render_facts_json(ir), encoding="utf-8")
        facts2.write_text(strategies.render_facts_json(ir, strategies.shuffled_facts(rnd, ir)), encoding="utf-8")
        traces = {}
        for name, facts, seed, workers in [("a", facts1, "0", "1"), ("b", facts1, "1", "8"),
                                           ("c", facts1, "random", "3"), ("d", facts2, "0", "1")]:
            out_file = d / f"{name}.jsonl"
            env = dict(os.environ, PYTHONHASHSEED=seed)
            proc = subprocess.run([sys.executable, "-m", "converge_rules", "run", "rules.cvg", "--facts", facts.name,
                                   "--workers", workers, "--trace", out_file.name, "--format", "summary", "--quiet"],
                                  cwd=d, env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            traces[name] = out_file.read_bytes()
        assert traces["a"] == traces["b"] == traces["c"]
        assert traces["a"].split(b"\n", 1)[1] == traces["d"].split(b"\n", 1)[1]


def test_signed_zeros_in_the_input_do_not_make_the_output_depend_on_input_order(tmp_path: Path) -> None:
    # -0.0 == 0.0: one fact to the rules and to dedupe, but they print differently,
    # so the one kept must not be whichever the input gave first.
    rules = tmp_path / "zeros.cvg"
    rules.write_text("input relation p(x: float, n: int)\nrelation q(x: float)\nrelation s(t: str)\n"
                     "q(x) :- p(x, _).\ns(to_str(x)) :- p(x, _).\n")
    neg_first, pos_first = tmp_path / "a.json", tmp_path / "b.json"
    neg_first.write_text('{"p": [[-0.0, 1], [0.0, 1], [-0.0, 2], [2.5, 3]]}')
    pos_first.write_text('{"p": [[2.5, 3], [0.0, 2], [0.0, 1], [-0.0, 1]]}')
    outs = [cli([rules], f, seed).stdout for f, seed in ((neg_first, "0"), (pos_first, "1"))]
    assert outs[0] == outs[1]
    data = json.loads(outs[0])
    assert data["facts"]["p"] == [[0.0, 1], [0.0, 2], [2.5, 3]]
    assert data["facts"]["s"] == [["0.0"], ["2.5"]]
    ruleset = cr.load([str(rules)])
    digests = {ruleset.run(facts={"p": facts}).digest
               for facts in ([(-0.0, 1), (0.0, 1)], [(0.0, 1), (-0.0, 1)], [(-0.0, 1)])}
    assert len(digests) == 1
    r = ruleset.run(facts={"p": [(-0.0, 1)]})
    assert r.facts("q") == [(0.0,)] and str(r.facts("q")[0][0]) == "0.0"
