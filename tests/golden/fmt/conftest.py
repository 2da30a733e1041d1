# The .cvg files here are formatter inputs (golden files for tests/test_fmt.py),
# not rule tests: keep the converge pytest plugin from collecting their test blocks.
collect_ignore_glob = ["*.cvg"]
