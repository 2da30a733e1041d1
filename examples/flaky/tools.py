"""A flaky credit bureau for examples/flaky: every call gives a new score.

The score is a base per applicant plus a jitter taken from the clock, so two
runs (or a run and a later re-run) rarely see the same value: a1 stays well
above the 600 threshold, a2 sits on it and its decision flips from run to run.
Only a decision record keeps the score a decision was actually made with.
"""

import time

BASE = {"a1": 720, "a2": 600, "a3": 650}


def credit_score(applicant: str) -> int:
    jitter = time.perf_counter_ns() // 1000 % 80 - 40  # -40 .. 39, different on every call
    return BASE.get(applicant, 500) + jitter
