#!/usr/bin/env bash
# Continuous PPO on Pendulum-v1: the measured run behind the test threshold in tests/test_ppo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/rlx train ppo --env Pendulum-v1 --seeds 4 --steps 150000 --num-envs 16 --num-steps 128 \
  --update-epochs 10 --num-minibatches 16 --normalize-obs --no-clip-value-loss \
  --lr 1e-3 --gamma 0.95 --ent-coef 0 --eval-every 9 --eval-episodes 16 --no-progress \
  --out experiments/results/ppo_pendulum
