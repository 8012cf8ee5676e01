#!/usr/bin/env bash
# Benchmarks: anchors in their own venvs, then rlx and the anchors timed in one run.
#
#   bash experiments/bench/run.sh         # PPO (rlx, PureJaxRL-style anchors: rejax, SB3)
#   bash experiments/bench/run.sh ppo     # the same
#   bash experiments/bench/run.sh sac     # SAC Pendulum updates/s, rlx vs rejax and SB3 (~20 min)
#   bash experiments/bench/run.sh iql     # IQL gradient steps/s, rlx vs JAX-CORL (~30 min)
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-ppo}" in
  ppo)
    bash experiments/bench/setup_anchors.sh rejax
    bash experiments/bench/setup_anchors.sh sb3
    .venv/bin/python experiments/bench/compare_ppo.py
    ;;
  sac)
    bash experiments/bench/setup_anchors.sh rejax
    bash experiments/bench/setup_anchors.sh sb3
    .venv/bin/python experiments/bench/compare_sac.py
    ;;
  iql)
    # If the anchor cannot be set up, compare_iql.py still runs and reports ANCHORS.md's
    # numbers for it, labelled as not measured in this run.
    bash experiments/bench/setup_anchors.sh iql || echo "[run.sh] JAX-CORL anchor setup failed; see above" >&2
    .venv/bin/python experiments/bench/compare_iql.py
    ;;
  *) echo "usage: $0 [ppo|sac|iql]" >&2; exit 2 ;;
esac
