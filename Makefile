# The two entry points. Each does all set-up itself (venv, packages, datasets) first.
#   make demo   the fair protocol (external tuning, one study) for AdamW, Lion and LAMB on the CPU
#               workloads, then the leaderboard and the report
#   make test   the test suite
.PHONY: setup demo test lint

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check algoperf workloads submissions tests benchmarks && .venv/bin/ruff format --check algoperf workloads submissions tests benchmarks
