"""The rule files here are data for tests/test_testing.py; some fail on purpose.

Keep the converge pytest plugin from collecting them when the project's own
test suite runs."""

collect_ignore_glob = ["*.cvg"]
