# Two commands do all of the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c "" 2>/dev/null || { echo "make: PYTHON=$(PYTHON) does not run here. Under pyenv, name the version:" \
	  "PYENV_VERSION=3.12.1 PYTHON=python3.12 VENV=.venv312 make test (pyenv versions lists them)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# PPO on CartPole-v1 over 8 seeds: per-seed table, runs/demo/{summary.json,metrics.csv,learning_curve.png}.
demo: $(VENV)/.installed
	$(VENV)/bin/rlx train ppo --env CartPole-v1 --seeds 8 --steps 500000 --objective ppo_clip --out runs/demo

# The test suite (CI runs this), two workers (one per core). tests/conftest.py groups the tests
# by file, and those on the generated offline datasets together, so shared fixtures are made once.
test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15

# The learning checks kept out of CI (marked slow; each has a home in experiments/).
test-slow: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup -q -m slow --durations=15

# rlx against the anchors (rejax, Stable-Baselines3) in one run; see experiments/bench/run.sh.
bench: $(VENV)/.installed
	bash experiments/bench/run.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
