"""Host tools for examples/scoring/scoring.cvg.

``credit_score`` stands for a remote credit bureau: it is busy on the first
request for applicant a2 (a transient failure that a retry fixes) and has no
file for a3 (a failure no retry fixes). ``RELIABLE`` is a bureau that always
answers: ``--tools examples.scoring.tools:RELIABLE``.
"""

SCORES = {"a1": 720, "a2": 655, "a3": 610, "a4": 540}

_requests: dict[str, int] = {}


def credit_score(applicant: str) -> int:
    _requests[applicant] = _requests.get(applicant, 0) + 1
    if applicant == "a3":
        raise LookupError("the bureau has no file for a3")
    if applicant == "a2" and _requests[applicant] == 1:
        raise ConnectionError("the bureau is busy, try again")
    return SCORES[applicant]


def _reliable_credit_score(applicant: str) -> int:
    return SCORES[applicant]


RELIABLE = {"credit_score": _reliable_credit_score}
