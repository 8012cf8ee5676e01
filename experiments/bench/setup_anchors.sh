#!/usr/bin/env bash
# Create the two anchor virtual environments used by the benchmark harness.
#
#   experiments/bench/.venv-rejax : rejax (JAX PPO/SAC anchor), gymnax 0.0.9
#   experiments/bench/.venv-sb3   : stable-baselines3 on CPU torch 2.13.0
#
# Idempotent: each venv gets a marker file (.anchor-complete) holding the exact
# pin list it was built from; when the marker matches and the imports work the
# venv is left alone. Delete the venv (or change a pin) to force a rebuild.
#
# Usage:  bash experiments/bench/setup_anchors.sh [rejax|sb3|all]   (default all)
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

what="${1:-all}"
case "$what" in
  rejax) build_venv "$REJAX_VENV" "$REJAX_CHECK" "${REJAX_PINS[@]}" ;;
  sb3)   build_venv "$SB3_VENV" "$SB3_CHECK" "${SB3_PINS[@]}" ;;
  all)
    build_venv "$REJAX_VENV" "$REJAX_CHECK" "${REJAX_PINS[@]}"
    build_venv "$SB3_VENV" "$SB3_CHECK" "${SB3_PINS[@]}"
    ;;
  *) echo "usage: $0 [rejax|sb3|all]" >&2; exit 2 ;;
esac
