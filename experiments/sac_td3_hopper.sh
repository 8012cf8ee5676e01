#!/usr/bin/env bash
# SAC and TD3 on Brax hopper (positional backend), 4 seeds each, through the CLI.
#   STEPS=1000000 bash experiments/sac_td3_hopper.sh
# 4 seeds rather than 3: rlx train shards seeds over the 2 cores and pads 3 to 4 anyway.
# Paper-style settings: 256×256, batch 256, one update per env step, 10k random warm-up steps.
# On the 2-core CPU machine one SAC update costs ~0.6 GFLOP, so 3 seeds × 1M steps take hours;
# STEPS defaults to 100k (about 40 min for both agents here), enough to see hopper start to hop.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-100000}
COMMON=(--env brax:hopper --seeds 4 --steps "$STEPS" --learning-starts 10000 --hidden 256,256 --batch-size 256
        --eval-every $((STEPS / 20)) --eval-episodes 4 --no-progress)
.venv/bin/rlx train sac "${COMMON[@]}" --out experiments/results/sac_hopper
.venv/bin/rlx train td3 "${COMMON[@]}" --out experiments/results/td3_hopper
