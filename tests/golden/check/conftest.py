"""The rule files here are inputs of ``converge check`` (tests/test_check.py), not rule tests to run:
w600_missing_given_file.cvg holds a test that reads a missing file on purpose (W600)."""

collect_ignore = ["w600_missing_given_file.cvg"]
