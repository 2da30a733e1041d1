"""Fuzz the rule and fact front ends: generated and mutated inputs, run in a worker process.

    python benchmarks/fuzz.py --inputs 100000              # rule files and fact files
    python benchmarks/fuzz.py --inputs 2000 --kind facts --seed 7 --timeout 5

Each input is generated from the grammar (``tests/fuzzing.py``) or mutated
from the corpus (the project's examples, the standard library, earlier
inputs), then taken through the whole public pipeline in a worker process:
compile, ``check`` with warnings, ``fmt``, a run with small budgets (tools
given for every ``@tool`` the rules call), and every output (JSON with
proofs, text tables, CSV, the trace, ``why`` and ``why-not`` of a fact).
A ``ConvergeError`` (diagnostics) is the expected way to reject an input.

Anything else is counted: a **traceback** (any other exception, grouped by
type and innermost frame of the package) or a **hang** (no answer within
``--timeout`` seconds: the worker is killed and replaced, so the runner
itself never hangs). Each class of problem is printed once with a sample
input (``repr``), and samples go to ``--save DIR`` (default
``benchmarks/out/fuzz``). Peak memory is the largest resident set of a
worker. Exit status: 0 when there were no tracebacks and no hangs, else 1.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import fuzzing  # noqa: E402  (tests/fuzzing.py)

MEMORY_LIMIT = 2 * 1024 ** 3  # a worker above this raises MemoryError: counted as a traceback


# ---------------------------------------------------------------- the worker side

def _tool(*args: object) -> object:
    """A deterministic stand-in for every tool the rules call."""
    key = sum(len(str(a)) for a in args)
    return (1, "a", 2.5, True, -3)[key % 5]


def _exercise_result(result: object, rules: object) -> None:
    from converge_rules.io.writers import csv_text, format_table

    schema = result.program.schema()  # type: ignore[attr-defined]
    result.to_json(proofs=True, all_proofs=True)  # type: ignore[attr-defined]
    result.trace_jsonl()  # type: ignore[attr-defined]
    result.digest  # type: ignore[attr-defined]
    for name in result.relations():  # type: ignore[attr-defined]
        facts = result.facts(name)  # type: ignore[attr-defined]
        if schema is not None:
            format_table(name, facts, schema)
            csv_text(name, facts, schema)
        for fact in facts[:2]:
            result.why((name, fact))  # type: ignore[attr-defined]
            result.why_not((name, fact))  # type: ignore[attr-defined]


def _one_rules(text: str, workdir: str) -> str:
    from converge_rules import api
    from converge_rules.diagnostics import ConvergeError
    from converge_rules.engine.loop import Budget
    from converge_rules.syntax.format import format_source

    path = os.path.join(workdir, "fuzz.cvg")
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogatepass"))
    if len(text) % 4 == 0:  # the formatter and the linter on a quarter of the inputs (parsing dominates)
        try:
            format_source(text, path)
        except ConvergeError:
            pass
        try:
            api.check([path])
        except ConvergeError:
            pass
    try:
        rules = api.load_text(text, "fuzz.cvg")
        tools = {name: _tool for name, _span in rules.tool_names()}
        result = rules.run(budget=Budget(max_cycles=8, max_facts=300, max_steps=3000), tools=tools,
                           tool_timeout=2.0, workers=1, trace=True)
        _exercise_result(result, rules)
        return "ran"
    except ConvergeError as err:
        return "rejected " + ",".join(sorted({d.code for d in err.diagnostics}))


_FACT_RULES = None


def _one_facts(name: str, text: str, workdir: str) -> str:
    global _FACT_RULES
    from converge_rules import api
    from converge_rules.diagnostics import ConvergeError
    from converge_rules.engine.loop import Budget

    if _FACT_RULES is None:
        _FACT_RULES = api.load_text(fuzzing.FACTS_SCHEMA_RULES, "schema.cvg")
    path = os.path.join(workdir, name)
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogatepass"))
    try:
        result = _FACT_RULES.run(fact_files=[path], budget=Budget(max_cycles=20, max_facts=2000), trace=True)
        _exercise_result(result, _FACT_RULES)
        return "ran"
    except ConvergeError as err:
        return "rejected " + ",".join(sorted({d.code for d in err.diagnostics}))
    finally:
        os.unlink(path)


def _classify(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    inner = [f for f in frames if "converge_rules" in f.filename] or frames
    where = f"{Path(inner[-1].filename).name}:{inner[-1].lineno} {inner[-1].name}" if inner else "?"
    return f"{type(err).__name__} at {where}"


def _worker(conn: "mp.connection.Connection", workdir: str) -> None:
    import gc
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    os.environ["CONVERGE_NO_CACHE"] = "1"
    handled = 0
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        kind, name, text = job
        try:
            outcome = _one_rules(text, workdir) if kind == "rules" else _one_facts(name, text, workdir)
            reply = ("ok", outcome, "")
        except BaseException as err:  # noqa: BLE001 - every escape is a finding
            reply = ("traceback", _classify(err), "".join(traceback.format_exception(err))[-4000:])
        if gc.get_freeze_count():
            gc.unfreeze()  # the runner's business, not the library's (a frozen heap only grows)
        handled += 1
        if handled % 50 == 0:
            gc.collect()  # cyclic garbage of earlier runs: keep each input's cost independent of the ones before
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        conn.send(reply + (rss,))


class _Worker:
    """A worker process and its pipe; replaced when an input hangs."""

    def __init__(self, ctx: mp.context.BaseContext, workdir: str):
        self.ctx = ctx
        self.workdir = workdir
        self.start()

    def start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.workdir), daemon=True)
        self.proc.start()
        child.close()

    def run(self, job: tuple[str, str, str], timeout: float) -> tuple[str, str, str, int] | None:
        try:
            self.conn.send(job)
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.restart()
            return ("traceback", "worker died (crash or memory limit)", "", 0)
        self.restart()
        return None

    def restart(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()
        self.start()

    def stop(self) -> None:
        self.conn.close()
        self.proc.kill()
        self.proc.join()


# ---------------------------------------------------------------- the runner side

def seed_corpus() -> tuple[list[str], list[tuple[str, str]]]:
    rules = []
    for base in ("examples", "stdlib_rules", "tests/data"):
        for path in sorted((ROOT / base).rglob("*.cvg")):
            try:
                rules.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                pass
    facts = []
    for path in sorted((ROOT / "tests" / "data" / "io").rglob("*")):
        if path.suffix in (".json", ".jsonl", ".csv", ".tsv", ".facts") and path.is_file() and path.stat().st_size < 20000:
            try:
                facts.append((path.name, path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                pass
    return rules, facts


def make_input(rng: random.Random, kind: str, rules_corpus: list[str], facts_corpus: list[tuple[str, str]]) -> tuple[str, str, str]:
    if kind == "rules":
        text = fuzzing.gen_rules(rng) if rng.random() < 0.5 or not rules_corpus else rng.choice(rules_corpus)
        if rng.random() < 0.8:
            text = fuzzing.mutate(rng, text, rules_corpus)
        return ("rules", "fuzz.cvg", text[:20000])
    name, text = fuzzing.gen_facts(rng) if rng.random() < 0.7 or not facts_corpus else rng.choice(facts_corpus)
    if rng.random() < 0.8:
        text = fuzzing.mutate(rng, text, [t for _, t in facts_corpus])
    if rng.random() < 0.05:  # the file name decides the format and, for some, the relation
        name = rng.choice(("edge.csv", "weight.tsv", "count.facts", "flag.json", "x.jsonl", "edge.cvg", "mix.csv"))
    return ("facts", name, text[:20000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1000, help="inputs per kind (default 1000)")
    parser.add_argument("--kind", choices=("rules", "facts", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    parser.add_argument("--save", default=str(ROOT / "benchmarks" / "out" / "fuzz"), help="where samples go")
    parser.add_argument("--show", type=int, default=3, help="traceback lines shown per class (0: none)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    rules_corpus, facts_corpus = seed_corpus()
    kinds = ["rules", "facts"] if args.kind == "both" else [args.kind]
    save = Path(args.save)
    failed = False
    for kind in kinds:
        rng = random.Random(f"{args.seed}:{kind}")
        workdir = tempfile.TemporaryDirectory(prefix="converge-fuzz-")
        worker = _Worker(ctx, workdir.name)
        outcomes: Counter[str] = Counter()
        problems: dict[str, tuple[int, str, str]] = {}
        hangs: list[str] = []
        peak = 0
        started = time.monotonic()
        try:
            for i in range(args.inputs):
                job = make_input(rng, kind, rules_corpus, facts_corpus)
                answer = worker.run(job, args.timeout)
                if answer is None:
                    hangs.append(job[2])
                    outcomes["hang"] += 1
                    if not args.quiet:
                        print(f"  new hang: {job[2][:200]!r}", file=sys.stderr)
                    key = f"hang ({job[1]})"
                    problems.setdefault(key, (0, job[2], ""))
                    problems[key] = (problems[key][0] + 1,) + problems[key][1:]
                else:
                    status, detail, tb, rss = answer
                    peak = max(peak, rss)
                    if status == "ok":
                        outcomes[detail.split(" ")[0]] += 1
                        for code in detail.split(" ")[1].split(",") if " " in detail else ():
                            outcomes[code] += 1
                    else:
                        outcomes["traceback"] += 1
                        count, sample, first_tb = problems.get(detail, (0, job[2], tb))
                        problems[detail] = (count + 1, sample, first_tb)
                        if count == 0 and not args.quiet:
                            print(f"  new: {detail}: {job[2][:200]!r}", file=sys.stderr)
                    if status == "ok" and len(job[2]) < 3000 and rng.random() < 0.02:
                        (rules_corpus if kind == "rules" else facts_corpus).append(  # type: ignore[arg-type]
                            job[2] if kind == "rules" else (job[1], job[2]))
                if not args.quiet and (i + 1) % 500 == 0:
                    print(f"  {kind}: {i + 1}/{args.inputs} inputs, {outcomes['traceback']} tracebacks, "
                          f"{outcomes['hang']} hangs, {time.monotonic() - started:.0f}s", file=sys.stderr)
        finally:
            worker.stop()
            workdir.cleanup()
        elapsed = time.monotonic() - started
        print(f"{kind}: {args.inputs} inputs in {elapsed:.1f}s ({args.inputs / max(elapsed, 1e-9):.0f}/s), "
              f"{outcomes['ran']} ran, {outcomes['rejected']} rejected with diagnostics, "
              f"{outcomes['traceback']} tracebacks, {outcomes['hang']} hangs, peak memory {peak / 2 ** 20:.0f} MiB")
        codes = sorted((c, n) for c, n in outcomes.items() if c[:1] in ("E", "W") and c[1:].isdigit())
        if codes:
            print("  diagnostics: " + ", ".join(f"{c} {n}" for c, n in codes))
        for n, (key, (count, sample, tb)) in enumerate(sorted(problems.items())):
            failed = True
            print(f"  [{count}x] {key}")
            print(f"    input: {sample[:300]!r}{' ...' if len(sample) > 300 else ''}")
            if args.show and tb:
                for line in tb.rstrip().splitlines()[-args.show:]:
                    print(f"    | {line}")
            save.mkdir(parents=True, exist_ok=True)
            (save / f"{kind}-{n:03d}.txt").write_text(f"{key}\n{tb}\n--- input (repr) ---\n{sample!r}\n",
                                                       encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
