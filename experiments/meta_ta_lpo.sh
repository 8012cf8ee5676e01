#!/usr/bin/env bash
# Meta-train TA-LPO (drift sees training progress n/N and log N) on CartPole-v1 with inner runs
# of two horizons, then evaluate it against ppo_clip and dpo (8 seeds) at horizons it never saw.
#
#   experiments/meta_ta_lpo.sh              # META_MINUTES=5 by default
#
# Outputs in experiments/results/meta_ta_lpo/. The inner PPO clips gradients by their joint norm
# (grad_clip=global), the default when these results were made.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/meta_ta_lpo
OUT=experiments/results/meta_ta_lpo
META_MINUTES=${META_MINUTES:-5}
mkdir -p "$OUT"
RESUME=""
[ -d "$RUN/checkpoints" ] && RESUME="--resume"
.venv/bin/rlx meta-train --objective ta_lpo --envs CartPole-v1 --inner-steps 16384,32768 \
  --population 16 --seeds 1 --generations 1000 --max-minutes "$META_MINUTES" \
  --strategy open_es --sigma 0.03 --lr 0.03 --ppo-weight 1 --init-scale 0.01 \
  --ppo num_envs=8 --ppo num_steps=64 --ppo update_epochs=4 --ppo num_minibatches=4 --ppo grad_clip=global \
  --no-progress --out "$RUN" $RESUME 2> "$RUN.stderr.log" | tee "$RUN.stdout.log"
for f in log.csv history.json summary.json config.json fitness.png objective.npz objective.json; do
  cp "$RUN/$f" "$OUT/$f"
done
# Horizons never seen in meta-training: shorter (8192) and longer (65536) than both trained ones.
for steps in 8192 65536; do
  mkdir -p "$OUT/horizon_$steps"
  .venv/bin/python experiments/meta_lpo_eval.py --objective "$OUT/objective.npz" --out "$OUT/horizon_$steps" \
    --env CartPole-v1 --steps "$steps" --seeds 8 --num-envs 8 --num-steps 64 --skip-plot
done
