#!/usr/bin/env bash
# Meta-train LPO (PPO-initialised drift network, Open_ES, population 32, antithetic,
# centred ranks) on CartPole-v1 + Acrobot-v1 with short PPO inner runs, for a fixed
# wall-clock budget on this 2-core CPU; then evaluate the learned objective against
# ppo_clip and dpo on a held-out MinAtar env (8 seeds each).
#
#   experiments/meta_lpo.sh                 # META_MINUTES=15 by default
#   META_MINUTES=5 EVAL_STEPS=200000 experiments/meta_lpo.sh
#
# Outputs (commit-ready) in experiments/results/meta_lpo/: log.csv, history.json,
# summary.json, config.json, fitness.png, objective.npz/.json, best_member.npz/.json,
# drift_surface.png, eval.json (+ eval_*/summary.json). Checkpoints stay in runs/meta_lpo.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/meta_lpo
OUT=experiments/results/meta_lpo
META_MINUTES=${META_MINUTES:-15}
mkdir -p "$OUT"
RESUME=""
[ -d "$RUN/checkpoints" ] && RESUME="--resume"
.venv/bin/rlx meta-train --objective lpo --envs CartPole-v1,Acrobot-v1 --inner-steps 32768 \
  --population 32 --seeds 1 --generations 1000 --max-minutes "$META_MINUTES" \
  --strategy open_es --sigma 0.03 --lr 0.03 --ppo-weight 1 --init-scale 0.01 \
  --ppo num_envs=8 --ppo num_steps=64 --ppo update_epochs=4 --ppo num_minibatches=4 --ppo grad_clip=global \
  --out "$RUN" $RESUME 2> "$RUN.stderr.log" | tee "$RUN.stdout.log"
for f in log.csv history.json summary.json config.json fitness.png objective.npz objective.json \
         best_member.npz best_member.json; do
  cp "$RUN/$f" "$OUT/$f"
done
cp "$RUN.stdout.log" "$OUT/meta_train.stdout.log"
.venv/bin/python experiments/meta_lpo_eval.py --objective "$OUT/objective.npz" --out "$OUT" \
  --env "${EVAL_ENV:-Breakout-MinAtar}" --steps "${EVAL_STEPS:-300000}" --seeds 8 | tee "$OUT/eval.log"
# The same comparison on the training envs at the meta-training horizon (in distribution).
for e in CartPole-v1 Acrobot-v1; do
  mkdir -p "$OUT/in_distribution/$e"
  .venv/bin/python experiments/meta_lpo_eval.py --objective "$OUT/objective.npz" --out "$OUT/in_distribution/$e" \
    --env "$e" --steps 32768 --seeds 8 --num-envs 8 --num-steps 64 --skip-plot
done
