#!/usr/bin/env bash
# The PPO benchmark: anchors in their own venvs, then rlx and the anchors timed in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/bench/setup_anchors.sh all
.venv/bin/python experiments/bench/compare_ppo.py
