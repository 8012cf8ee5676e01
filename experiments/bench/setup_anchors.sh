#!/usr/bin/env bash
# Create the two anchor virtual environments used by the benchmark harness.
#
#   experiments/bench/.venv-rejax : rejax (JAX PPO/SAC anchor), gymnax 0.0.9
#   experiments/bench/.venv-sb3   : stable-baselines3 on CPU torch 2.13.0
#   experiments/bench/.venv-jaxcorl: JAX-CORL's single-file IQL (the IQL anchor), plus a
#                                   copy of that file in experiments/bench/.anchor-src/
#
# Idempotent: each venv gets a marker file (.anchor-complete) holding the exact
# pin list it was built from; when the marker matches and the imports work the
# venv is left alone. Delete the venv (or change a pin) to force a rebuild.
#
# Usage:  bash experiments/bench/setup_anchors.sh [rejax|sb3|iql|all]   (default all)
#
# Pins (verified on 2 CPU cores, python 3.11.7):
#   - rejax 0.1.3 needs gymnax 0.0.9: gymnax 1.x changed the environment API
#     and rejax breaks on it.
#   - jax/jaxlib 0.10.2 + flax 0.12.8 run rejax PPO and SAC fine. These are
#     also the jax/flax versions of the project's main venv, so the XLA
#     compiler is the same on both sides of the comparison.
#   - optax 0.2.8, distrax 0.1.9, chex 0.1.92 are what the resolver picks
#     with the pins above; pinned so the anchor does not drift.
#     (distrax also pulls tfp-nightly, left unpinned: nightlies get deleted.)
#   - torch 2.13.0: the CPU wheel that lies on this machine's disk
#     (/opt/wheels, via pip's find-links). Do not install other torch versions:
#     a plain `torch` from the index may be a CUDA build.
#   - stable-baselines3 2.9.2, gymnasium 1.4.0.
#   - JAX-CORL (github nissymori/JAX-CORL) is not a package: its algos/iql.py is read from
#     a local git copy of the repository, pinned to the commit in JAXCORL_COMMIT below, and copied to
#     experiments/bench/.anchor-src/jaxcorl_iql.py (git-ignored: none of its code is
#     committed here). Point JAXCORL_GIT at a git dir or a clone of it; the default is
#     the mirror the project's tooling fetches it into.
#     Its venv has the rejax pins for jax/flax/optax/distrax/chex (same XLA compiler as
#     rlx's venv) plus the three small packages iql.py needs at import and for its config
#     (omegaconf, pydantic, tqdm). d4rl, gym, mujoco and wandb are NOT installed: the data
#     are synthetic and anchor_jaxcorl_iql.py puts empty stand-ins for those modules in
#     sys.modules before importing the file (they are only used by its dataset loader,
#     evaluation and __main__ block, which the benchmark never calls).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

REJAX_VENV="$HERE/.venv-rejax"
SB3_VENV="$HERE/.venv-sb3"

REJAX_PINS=(
  "rejax==0.1.3"
  "gymnax==0.0.9"
  "jax==0.10.2"
  "jaxlib==0.10.2"
  "flax==0.12.8"
  "optax==0.2.8"
  "distrax==0.1.9"
  "chex==0.1.92"
)
REJAX_CHECK='import jax, flax, gymnax, rejax; rejax.PPO; rejax.SAC; print("rejax ok: jax", jax.__version__, "flax", flax.__version__)'

SB3_PINS=(
  "torch==2.13.0"
  "stable-baselines3==2.9.2"
  "gymnasium==1.4.0"
)
JAXCORL_VENV="$HERE/.venv-jaxcorl"
JAXCORL_SRC_DIR="$HERE/.anchor-src"
JAXCORL_COMMIT="${JAXCORL_COMMIT:-d747dd8ad4fcc088ff9f1ade49a6be43a60f6556}"
JAXCORL_IQL_SHA256="554cca798b18ca19fabe3573a5b9a6d0b3f242ac7a92e57141726390ffeee0f0"
JAXCORL_GIT="${JAXCORL_GIT:-/work/.mirror/nissymori+JAX-CORL/repo}"
JAXCORL_PINS=(
  "jax==0.10.2"
  "jaxlib==0.10.2"
  "flax==0.12.8"
  "optax==0.2.8"
  "distrax==0.1.9"
  "chex==0.1.92"
  "omegaconf==2.4.0"
  "pydantic==2.14.3"
  "tqdm==4.70.1"
)
JAXCORL_CHECK='import jax, flax, optax, distrax, omegaconf, pydantic, tqdm; from flax.training.train_state import TrainState; print("jaxcorl venv ok: jax", jax.__version__, "flax", flax.__version__)'

SB3_CHECK='import torch, stable_baselines3, gymnasium; assert torch.version.cuda is None, "CUDA torch build installed"; print("sb3 ok: torch", torch.__version__, "sb3", stable_baselines3.__version__)'

build_venv() {
  local venv="$1" check="$2"; shift 2
  local pins=("$@")
  local marker="$venv/.anchor-complete"
  local want
  want="$(printf '%s\n' "${pins[@]}")"

  if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]] \
     && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "[setup_anchors] $(basename "$venv") already complete, skipping"
    return 0
  fi

  echo "[setup_anchors] building $(basename "$venv") ..."
  rm -f "$marker"
  if [[ ! -x "$venv/bin/python" ]]; then
    "$PY" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet "${pins[@]}"
  "$venv/bin/python" -c "$check"
  printf '%s\n' "$want" > "$marker"
  echo "[setup_anchors] $(basename "$venv") done"
}

copy_jaxcorl_iql() {
  # Extract algos/iql.py at the pinned commit from a local git copy of JAX-CORL.
  local dest="$JAXCORL_SRC_DIR/jaxcorl_iql.py" gitdir="$JAXCORL_GIT" tmp
  if [[ -f "$dest" ]] && echo "$JAXCORL_IQL_SHA256  $dest" | sha256sum -c --status; then
    echo "[setup_anchors] .anchor-src/jaxcorl_iql.py already present (commit ${JAXCORL_COMMIT:0:7}), skipping"
    return 0
  fi
  if [[ -d "$gitdir/.git" ]]; then gitdir="$gitdir/.git"; fi
  if ! git --git-dir="$gitdir" cat-file -e "$JAXCORL_COMMIT:algos/iql.py" 2>/dev/null; then
    echo "[setup_anchors] cannot find JAX-CORL commit $JAXCORL_COMMIT in JAXCORL_GIT=$JAXCORL_GIT" >&2
    echo "[setup_anchors] clone github nissymori/JAX-CORL somewhere and run again with JAXCORL_GIT=<that clone>" >&2
    return 1
  fi
  mkdir -p "$JAXCORL_SRC_DIR"
  tmp="$(mktemp)"
  git --git-dir="$gitdir" show "$JAXCORL_COMMIT:algos/iql.py" > "$tmp"
  if ! echo "$JAXCORL_IQL_SHA256  $tmp" | sha256sum -c --status; then
    echo "[setup_anchors] warning: algos/iql.py at $JAXCORL_COMMIT has an unexpected sha256" >&2
  fi
  mv "$tmp" "$dest"
  echo "$JAXCORL_COMMIT" > "$JAXCORL_SRC_DIR/jaxcorl_iql.commit"
  echo "[setup_anchors] copied JAX-CORL algos/iql.py (commit ${JAXCORL_COMMIT:0:7}) to .anchor-src/jaxcorl_iql.py"
}

setup_iql() {
  build_venv "$JAXCORL_VENV" "$JAXCORL_CHECK" "${JAXCORL_PINS[@]}"
  copy_jaxcorl_iql
}

what="${1:-all}"
case "$what" in
  rejax) build_venv "$REJAX_VENV" "$REJAX_CHECK" "${REJAX_PINS[@]}" ;;
  sb3)   build_venv "$SB3_VENV" "$SB3_CHECK" "${SB3_PINS[@]}" ;;
  iql)   setup_iql ;;
  all)
    build_venv "$REJAX_VENV" "$REJAX_CHECK" "${REJAX_PINS[@]}"
    build_venv "$SB3_VENV" "$SB3_CHECK" "${SB3_PINS[@]}"
    setup_iql
    ;;
  *) echo "usage: $0 [rejax|sb3|iql|all]" >&2; exit 2 ;;
esac
