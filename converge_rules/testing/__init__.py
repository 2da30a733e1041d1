"""Rule tests: ``test`` blocks in ``.cvg`` files, run by ``converge test`` and the pytest plugin.

``run_paths(paths)`` discovers and runs every test block under the paths and
returns a ``Report`` (text, JSON, JUnit XML, coverage); ``load_file`` and
``run_test`` run one file's tests one by one (the pytest plugin uses them).
"""

from .runner import (Failure, FileTests, Report, TestOutcome, discover, has_test_blocks, load_file, run_paths,
                     run_test)

__all__ = ["Failure", "FileTests", "Report", "TestOutcome", "discover", "has_test_blocks", "load_file", "run_paths",
           "run_test"]
