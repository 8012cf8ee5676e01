#!/usr/bin/env bash
# The quickstart job (make demo), with its outputs kept under experiments/results.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/rlx train ppo --env CartPole-v1 --seeds 8 --steps 500000 --objective ppo_clip --no-progress \
  --out experiments/results/ppo_cartpole
