# Fixtures live in plugin modules so that each part of the suite owns its own file.
pytest_plugins = ["tests.fixtures_runtime", "tests.fixtures_corpus", "tests.fixtures_runs"]
