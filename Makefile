# The two entry points. Each does all set-up itself (venv, packages, datasets) first.
#   make demo   the fair protocol (external tuning, one study) for AdamW, Lion and LAMB on the CPU
#               workloads, then the leaderboard and the report
#   make test   the test suite
# And the committed baseline leaderboard (results/baselines-cpu.md):
#   make baselines  every baseline with its defaults, self-tuning ruleset, 3 studies
.PHONY: setup demo test lint baselines

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

baselines: setup
	bash scripts/baselines.sh

lint: setup
	.venv/bin/ruff check algoperf workloads submissions examples tests benchmarks && .venv/bin/ruff format --check algoperf workloads submissions examples tests benchmarks
