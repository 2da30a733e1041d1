"""Tools for the convergence-control tests: deterministic functions of their arguments."""

import time

FAILS_BEFORE_SUCCESS = {"bad": 10**9, "twice": 2}
_calls: dict[str, int] = {}


def credit_score(applicant):
    _calls[applicant] = _calls.get(applicant, 0) + 1
    if _calls[applicant] <= FAILS_BEFORE_SUCCESS.get(applicant, 0):
        raise RuntimeError(f"bureau unavailable for {applicant}")
    return 100 * len(applicant)


def slow(x):
    time.sleep(5)
    return 1


TOOLS = {"credit_score": credit_score}
