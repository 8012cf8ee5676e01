#!/usr/bin/env bash
# Every registered policy objective on CartPole-v1, 8 seeds each, 500k steps.
set -euo pipefail
cd "$(dirname "$0")/.."
for obj in ppo_clip dpo kl_penalty kl_penalty_adaptive mdpo lpo; do
  .venv/bin/rlx train ppo --env CartPole-v1 --seeds 8 --steps 500000 --objective "$obj" --no-progress \
    --out "experiments/results/ppo_objectives/$obj"
done
