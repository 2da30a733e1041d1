#!/usr/bin/env python3
"""Benchmark the Converge engine against hand-written Python baselines.

Each measurement is one whole child process, interpreter start-up included:

    engine:  <engine cmd> run rules/<prog>.cvg --facts DATA_DIR --format summary
    hand:    <python> benchmarks/hand/<prog>.py DATA_DIR

Wall time is time.perf_counter() around Popen + wait; peak memory is the
child's ru_maxrss from os.wait4() (KiB on Linux), for that child only.  Both
print a ``relations:`` block of ``  name: count`` lines; the counts must
agree, or the run aborts.

Examples:
    python benchmarks/run.py                    # full table, 3 runs each
    python benchmarks/run.py --quick            # smoke test, seconds
    python benchmarks/run.py --only tc-chain,negation --runs 5
    python benchmarks/run.py --hand-only        # baselines only
    python benchmarks/run.py --engine "converge"

The table is also written as JSON to benchmarks/out/results.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import BENCH_DIR, BY_NAME, WORKLOADS, Size, Workload  # noqa: E402

REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
DEFAULT_JSON = OUT_DIR / "results.json"
PEERS_DIR = BENCH_DIR / "peers"
PEERS = {"clingo": "clingo_peer.py", "pyDatalog": "pydatalog_peer.py"}  # name -> runner script


class BenchError(Exception):
    """A condition that makes the measurements meaningless: abort."""


# --------------------------------------------------------------------------
# one measured child process


@dataclass
class Run:
    cmd: list[str]
    seconds: float
    peak_kib: int
    returncode: int | None      # None when killed by the timeout
    stdout: str
    stderr: str
    floor_kib: int = 0          # the harness's own peak RSS at spawn time

    @property
    def at_floor(self) -> bool:
        """The child's real peak may be lower than reported (see measure)."""
        return self.peak_kib <= self.floor_kib

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def peak_mb(self) -> float:
        return self.peak_kib / 1024.0


def measure(cmd: list[str], timeout: float | None) -> Run:
    """Run ``cmd`` once; return wall seconds, peak RSS and its output.

    Output goes to temporary files (not pipes) so a chatty child can never
    block, and the child is reaped with os.wait4 to get its own rusage.  On
    timeout the child is killed through a pidfd, which cannot hit a recycled
    pid.

    Linux caveat: a child's ru_maxrss starts at the *parent's* peak RSS,
    because fork/vfork + exec carries the old address space's high-water mark
    over into the child.  The value is max(child peak, harness peak), exact
    whenever the child outgrows the harness.  The harness therefore stays
    small (data is generated in a subprocess), and records its own peak as
    ``floor_kib`` so such readings can be shown as "<=floor"."""
    floor_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, cwd=REPO_DIR)
        except OSError as e:
            raise BenchError(f"cannot start {shlex.join(cmd)}: {e}") from None
        killed = threading.Event()
        timer = pidfd = None
        if timeout is not None:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except (AttributeError, OSError):
                pidfd = None

            def kill() -> None:
                killed.set()
                try:
                    if pidfd is not None:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    else:
                        os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout, kill)
            timer.daemon = True
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
        finally:
            if timer is not None:
                timer.cancel()
            if pidfd is not None:
                os.close(pidfd)
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc          # reaped by hand: tell Popen
        out.seek(0)
        err.seek(0)
        return Run(
            cmd=cmd, seconds=seconds, peak_kib=usage.ru_maxrss,
            floor_kib=floor_kib,
            returncode=None if killed.is_set() and rc == -signal.SIGKILL else rc,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


# --------------------------------------------------------------------------
# the summary format shared by the engine and the hand loops

_REL_LINE = re.compile(r"^\s+([A-Za-z_][\w.]*)\s*:\s*(\d+)\s*$")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")


@dataclass
class Summary:
    fields: dict[str, str] = field(default_factory=dict)     # tier, digest...
    relations: dict[str, int] = field(default_factory=dict)


def parse_summary(text: str) -> Summary:
    """Parse ``key: value`` lines and the ``relations:`` block.

    The block is the indented ``  name: count`` lines following a line that
    is exactly ``relations:``; it ends at the first line of another shape."""
    s = Summary()
    in_block = False
    seen_block = False
    for line in text.splitlines():
        if in_block:
            m = _REL_LINE.match(line)
            if m:
                s.relations[m.group(1)] = int(m.group(2))
                continue
            in_block = False
        if line.strip() == "relations:" and not line.startswith((" ", "\t")):
            in_block = seen_block = True
            continue
        m = _KEY_LINE.match(line)
        if m:
            s.fields.setdefault(m.group(1), m.group(2))
    if not seen_block:
        raise ValueError("no 'relations:' block in the output")
    return s


# --------------------------------------------------------------------------
# running one workload + size


@dataclass
class Row:
    workload: str
    size: str
    data_dir: str
    output_relation: str
    facts_out: int | None = None
    engine_runs: list[Run] = field(default_factory=list)
    hand_runs: list[Run] = field(default_factory=list)
    engine_summary: Summary | None = None
    hand_summary: Summary | None = None
    engine_timeout: bool = False
    hand_timeout: bool = False
    peer_runs: dict[str, list[Run]] = field(default_factory=dict)
    peer_timeout: dict[str, bool] = field(default_factory=dict)
    peer_summary: dict[str, Summary] = field(default_factory=dict)

    def peer_s(self, name: str) -> float | None:
        return None if self.peer_timeout.get(name) else self._median(self.peer_runs.get(name, []))

    @staticmethod
    def _median(runs: list[Run]) -> float | None:
        return statistics.median(r.seconds for r in runs) if runs else None

    @staticmethod
    def _peak(runs: list[Run]) -> float | None:
        done = [r for r in runs if not r.timed_out]
        return max(r.peak_mb for r in done) if done else None

    @property
    def engine_s(self) -> float | None:
        return None if self.engine_timeout else self._median(self.engine_runs)

    @property
    def hand_s(self) -> float | None:
        return None if self.hand_timeout else self._median(self.hand_runs)

    @property
    def ratio(self) -> float | None:
        e, h = self.engine_s, self.hand_s
        return e / h if e is not None and h else None

    @property
    def engine_mb(self) -> float | None:
        return self._peak(self.engine_runs)

    @property
    def hand_mb(self) -> float | None:
        return self._peak(self.hand_runs)

    @staticmethod
    def _floored(runs: list[Run]) -> bool:
        """True when every reading is the harness's floor (see measure)."""
        done = [r for r in runs if not r.timed_out]
        return bool(done) and all(r.at_floor for r in done)

    @property
    def engine_mb_floored(self) -> bool:
        return self._floored(self.engine_runs)

    @property
    def hand_mb_floored(self) -> bool:
        return self._floored(self.hand_runs)

    def to_json(self) -> dict:
        def runs(rs: list[Run]) -> list[dict]:
            return [{"seconds": round(r.seconds, 6), "peak_kib": r.peak_kib,
                     "harness_peak_kib": r.floor_kib,
                     "returncode": r.returncode} for r in rs]
        return {
            "workload": self.workload,
            "size": self.size,
            "data_dir": self.data_dir,
            "output_relation": self.output_relation,
            "facts_out": self.facts_out,
            "engine_median_s": self.engine_s,
            "hand_median_s": self.hand_s,
            "ratio_engine_over_hand": self.ratio,
            "engine_peak_mb": self.engine_mb,
            "hand_peak_mb": self.hand_mb,
            "engine_peak_is_upper_bound": self.engine_mb_floored,
            "hand_peak_is_upper_bound": self.hand_mb_floored,
            "engine_timeout": self.engine_timeout,
            "hand_timeout": self.hand_timeout,
            "engine_tier": (self.engine_summary.fields.get("tier")
                            if self.engine_summary else None),
            "engine_digest": (self.engine_summary.fields.get("digest")
                              if self.engine_summary else None),
            "engine_relations": (self.engine_summary.relations
                                 if self.engine_summary else None),
            "hand_relations": (self.hand_summary.relations
                               if self.hand_summary else None),
            "engine_runs": runs(self.engine_runs),
            "hand_runs": runs(self.hand_runs),
            "peers": {name: {"median_s": self.peer_s(name), "timeout": self.peer_timeout.get(name, False),
                             "peak_mb": self._peak(rs), "runs": runs(rs),
                             "relations": (self.peer_summary[name].relations
                                           if name in self.peer_summary else None)}
                      for name, rs in sorted(self.peer_runs.items())},
        }


def _tail(text: str, n: int = 25) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > n:
        lines = ["..."] + lines[-n:]
    return "\n".join("    " + ln for ln in lines) or "    (empty)"


def _check_run(label: str, run: Run) -> Summary:
    """Fail on a non-zero exit or unparsable output; return the summary."""
    where = f"{label}: {shlex.join(run.cmd)}"
    if run.returncode != 0:
        raise BenchError(
            f"{where}\n  exited with status {run.returncode}\n"
            f"  stderr:\n{_tail(run.stderr)}\n  stdout:\n{_tail(run.stdout)}")
    try:
        return parse_summary(run.stdout)
    except ValueError as e:
        raise BenchError(f"{where}\n  {e}; stdout was:\n{_tail(run.stdout)}"
                         f"\n  stderr:\n{_tail(run.stderr)}") from None


def _same_summary(label: str, first: Summary, again: Summary, run: Run) -> None:
    """Every run of the same command must report the same result."""
    if again.relations != first.relations:
        raise BenchError(
            f"{label}: counts changed between runs of {shlex.join(run.cmd)}\n"
            f"  first: {first.relations}\n  now:   {again.relations}")
    d1, d2 = first.fields.get("digest"), again.fields.get("digest")
    if d1 != d2:
        raise BenchError(
            f"{label}: digest changed between runs of {shlex.join(run.cmd)} "
            f"(nondeterminism)\n  first: {d1}\n  now:   {d2}")


def ensure_data(wl: Workload, size: Size, log) -> Path:
    """Generate the data set in a child process if it is missing, so that
    the harness's own peak RSS (the floor of every ru_maxrss reading, see
    measure) stays small."""
    target = wl.data_dir(size)
    if not target.is_dir():
        log(f"  generating {target.relative_to(REPO_DIR)}")
        cmd = [sys.executable, str(BENCH_DIR / "workloads.py"), wl.name,
               *map(str, size.params)]
        proc = subprocess.run(cmd, cwd=REPO_DIR, capture_output=True,
                              text=True)
        if proc.returncode != 0 or not target.is_dir():
            raise BenchError(f"data generation failed: {shlex.join(cmd)}\n"
                             f"{_tail(proc.stderr)}")
    return target


def bench_one(wl: Workload, size: Size, args: argparse.Namespace,
              log) -> Row:
    data = ensure_data(wl, size, log)
    row = Row(workload=wl.name, size=size.label,
              data_dir=str(data.relative_to(REPO_DIR)),
              output_relation=wl.output)
    engine_cmd = args.engine + ["run", str(wl.rules_path), "--facts",
                                str(data), "--format", "summary", *size.engine_args]
    hand_cmd = [sys.executable, str(wl.hand_path), str(data)]
    tag = f"{wl.name} {size.label}"

    for i in range(args.runs):
        # Interleave engine and hand runs so slow drift (thermal, other
        # load) affects both sides alike.
        sides = [("hand", hand_cmd)]
        if not args.hand_only:
            sides.insert(0, ("engine", engine_cmd))
        for side, cmd in sides:
            if getattr(row, f"{side}_timeout"):
                continue
            run = measure(cmd, args.timeout)
            getattr(row, f"{side}_runs").append(run)
            if run.timed_out:
                setattr(row, f"{side}_timeout", True)
                log(f"  {tag}: {side} run {i + 1}/{args.runs}: TIMEOUT "
                    f"after {args.timeout:g}s")
                continue
            summary = _check_run(f"{tag} ({side})", run)
            first = getattr(row, f"{side}_summary")
            if first is None:
                setattr(row, f"{side}_summary", summary)
            else:
                _same_summary(f"{tag} ({side})", first, summary, run)
            log(f"  {tag}: {side} run {i + 1}/{args.runs}: "
                f"{run.seconds:.3f}s, {run.peak_mb:.1f} MB")

    from peers.programs import PROGRAMS as PEER_PROGRAMS
    for name in args.peers:
        if wl.rules_path.stem not in PEER_PROGRAMS:  # no peer version of this program (wide rules): cell "-"
            continue
        cmd = [sys.executable, str(PEERS_DIR / PEERS[name]), wl.rules_path.stem, str(data)]
        runs: list[Run] = row.peer_runs.setdefault(name, [])
        for i in range(args.runs):
            run = measure(cmd, args.peer_timeout)
            runs.append(run)
            if run.timed_out:
                row.peer_timeout[name] = True
                log(f"  {tag}: {name} run {i + 1}/{args.runs}: TIMEOUT after {args.peer_timeout:g}s")
                break
            summary = _check_run(f"{tag} ({name})", run)
            row.peer_summary.setdefault(name, summary)
            log(f"  {tag}: {name} run {i + 1}/{args.runs}: {run.seconds:.3f}s, {run.peak_mb:.1f} MB")

    _check_counts(wl, size, row)
    return row


def _check_counts(wl: Workload, size: Size, row: Row) -> None:
    tag = f"{wl.name} {size.label}"
    hand, eng = row.hand_summary, row.engine_summary
    if hand is not None:
        if wl.output not in hand.relations:
            raise BenchError(f"{tag}: the hand loop printed no count for "
                             f"'{wl.output}': {hand.relations}")
        row.facts_out = hand.relations[wl.output]
        if wl.expected is not None:
            want = wl.expected(size.params)
            if row.facts_out != want:
                raise BenchError(f"{tag}: hand loop gives {wl.output} = "
                                 f"{row.facts_out}, expected {want}")
    for name, peer in sorted(row.peer_summary.items()):
        want = (hand or eng).relations if (hand or eng) else {}
        if wl.output in want and peer.relations.get(wl.output) != want[wl.output]:
            raise BenchError(f"{tag}: {name} gives {wl.output} = {peer.relations.get(wl.output)}, "
                             f"expected {want[wl.output]}")
    if eng is None:
        return
    tier = eng.fields.get("tier")
    if wl.output not in eng.relations:
        raise BenchError(
            f"{tag}: the engine printed no count for '{wl.output}' "
            f"(tier: {tier}); relations: {eng.relations}")
    if hand is None:            # hand loop timed out: trust the engine's count
        row.facts_out = eng.relations[wl.output]
        return
    diffs = {rel: (eng.relations[rel], hand.relations[rel])
             for rel in sorted(set(eng.relations) & set(hand.relations))
             if eng.relations[rel] != hand.relations[rel]}
    if diffs:
        lines = "\n".join(f"    {rel}: engine {e}, hand {h}"
                          for rel, (e, h) in diffs.items())
        raise BenchError(
            f"{tag}: engine and hand loop disagree on fact counts "
            f"(engine tier: {tier}, reasons: {eng.fields.get('reasons')})\n"
            f"{lines}\n  engine: {shlex.join(row.engine_runs[0].cmd)}\n"
            f"  hand:   {shlex.join(row.hand_runs[0].cmd)}")


# --------------------------------------------------------------------------
# output

HEADERS = ["workload", "size", "facts out", "engine s", "hand s",
           "engine/hand", "engine MB", "hand MB"]


def headers(peers: list[str]) -> list[str]:
    return HEADERS + [f"{name} s" for name in peers]


def _cells(row: Row, peers: list[str] = ()) -> list[str]:
    def secs(v: float | None, timed_out: bool) -> str:
        return "timeout" if timed_out else ("-" if v is None else f"{v:.3f}")

    def mb(v: float | None, floored: bool) -> str:
        return "-" if v is None else ("<=" if floored else "") + f"{v:.1f}"

    return [row.workload, row.size,
            "-" if row.facts_out is None else f"{row.facts_out:,}",
            secs(row.engine_s, row.engine_timeout),
            secs(row.hand_s, row.hand_timeout),
            "-" if row.ratio is None else f"{row.ratio:.1f}x",
            mb(row.engine_mb, row.engine_mb_floored),
            mb(row.hand_mb, row.hand_mb_floored)] + [
            secs(row.peer_s(name), row.peer_timeout.get(name, False)) for name in peers]


def format_table(rows: list[Row], markdown: bool = False, peers: list[str] = ()) -> str:
    cols = headers(list(peers))
    body = [_cells(r, peers) for r in rows]
    left = {0, 1}               # text columns; the rest are right-aligned
    if markdown:
        out = ["| " + " | ".join(cols) + " |",
               "|" + "|".join("---" if i in left else "--:"
                              for i in range(len(cols))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(cols, *body)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])]
                     + [line(r) for r in body])


def write_json(path: Path, rows: list[Row], args: argparse.Namespace,
               error: str | None, loadavg: dict | None = None) -> None:
    doc = {
        "meta": {
            "created": datetime.datetime.now(datetime.timezone.utc)
                       .isoformat(timespec="seconds"),
            "runs": args.runs,
            "quick": args.quick,
            "hand_only": args.hand_only,
            "engine_cmd": args.engine,
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "timing": "median wall seconds per whole process (perf_counter "
                      "around Popen+wait4)",
            "memory": "peak RSS of the child, ru_maxrss from wait4, max over "
                      "runs, MB = MiB",
            "loadavg": loadavg,
            "error": error,
        },
        "rows": [r.to_json() for r in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time the Converge engine against hand-written baselines.",
        epilog="workloads: " + ", ".join(w.name for w in WORKLOADS))
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="runs per measurement; the median is reported "
                        "(default 3)")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help="run only these workloads")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke test that finishes in seconds")
    p.add_argument("--engine", metavar="CMD",
                   help="engine command, split like a shell would (default: the `converge` script "
                        "installed beside this Python, as users run it; else python -m converge_rules)")
    p.add_argument("--hand-only", action="store_true",
                   help="time only the hand loops")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="SEC",
                   help="kill a single run after SEC seconds and report "
                        "'timeout' (default 1800; 0 = none)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                   help="where to write the JSON results "
                        "(default benchmarks/out/results.json)")
    p.add_argument("--markdown", action="store_true",
                   help="print the table as Markdown (for the README)")
    p.add_argument("--peers", nargs="?", const=",".join(PEERS), default="", metavar="NAME[,NAME]",
                   help="also run the same programs on other engines, checking counts: "
                        + ", ".join(PEERS) + " (default: all of them)")
    p.add_argument("--peer-timeout", type=float, default=120.0, metavar="SEC",
                   help="kill a single peer run after SEC seconds (default 120)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no per-run progress on stderr")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    args.timeout = args.timeout if args.timeout > 0 else None
    args.peers = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown_peers = [n for n in args.peers if n not in PEERS]
    if unknown_peers:
        p.error(f"unknown peer(s): {', '.join(unknown_peers)}; choose from {', '.join(PEERS)}")
    args.engine = shlex.split(args.engine) if args.engine else default_engine()
    if not args.engine:
        p.error("--engine must not be empty")
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            p.error(f"unknown workload(s): {', '.join(unknown)}; choose from "
                    + ", ".join(w.name for w in WORKLOADS))
        args.workloads = [w for w in WORKLOADS if w.name in names]
    else:
        args.workloads = list(WORKLOADS)
    return args


def default_engine() -> list[str]:
    """The installed `converge` console script next to this interpreter: what a user runs.
    (`python -m converge_rules` from the repository root would import the source tree instead.)"""
    script = os.path.join(os.path.dirname(sys.executable), "converge")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "converge_rules"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    def warn(msg: str) -> None:     # shown even with --quiet
        print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    cpus = os.cpu_count() or 1
    if load_before[0] >= 0.5 * cpus:
        warn(f"warning: load average is {load_before[0]:.2f} on {cpus} CPUs; "
            "other work on this machine will make the timings noisy")

    rows: list[Row] = []
    error = None
    try:
        for wl in args.workloads:
            for size in wl.sizes_for(args.quick):
                log(f"{wl.name} {size.label} ...")
                rows.append(bench_one(wl, size, args, log))
    except BenchError as e:
        error = str(e)
    except KeyboardInterrupt:
        error = "interrupted"

    if rows:
        print(format_table(rows, markdown=args.markdown, peers=args.peers))
    load_after = os.getloadavg()
    if load_after[0] >= 0.5 * cpus + 1 and load_before[0] < 0.5 * cpus:
        warn(f"warning: load average rose to {load_after[0]:.2f} during the "
            "run; other work on this machine may have skewed the timings")
    write_json(args.json, rows, args, error,
               loadavg={"before": load_before, "after": load_after})
    if error:
        print(f"\nABORTED: {error}", file=sys.stderr)
        return 1
    log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
