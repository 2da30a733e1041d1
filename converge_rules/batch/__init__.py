"""Batch jobs: many independent jobs over one rule set (``converge batch``, ``RuleSet.run_many``).

Modules, in the direction of flow: ``jobs`` (where jobs come from), ``runner``
(running them in this process or on a process pool; ``cluster`` for Dask) and
``sinks`` (writing results as they finish, resumably, in job-id order).
"""

from .jobs import Job, iter_jobs, job_key
from .runner import BatchSettings, JobResult

__all__ = ["BatchSettings", "Job", "JobResult", "iter_jobs", "job_key"]
