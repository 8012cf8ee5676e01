"""Interleaved A/B rounds for the bench's ab_*.py scripts: every measurement a fresh process.

A script measures one (variant, setting) when called as ``script --one VARIANT SETTING`` and prints
a JSON object as its last line. ``interleaved`` runs every setting's variants once per round, in
alternating order (no order bias), with no compilation cache and no XLA_FLAGS from the caller.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def interleaved(script: str, variants, settings, rounds: int) -> list[dict]:
    """Rows ``{"round": r, **measurement}``, printing each one's compile seconds as it lands."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS")}
    rows = []
    for r in range(rounds):
        for setting in settings:
            for variant in (variants if r % 2 == 0 else variants[::-1]):
                out = subprocess.run([sys.executable, script, "--one", variant, str(setting)], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True).stdout
                rows.append({"round": r, **json.loads(out.strip().splitlines()[-1])})
                print(f"round {r} {setting} {variant:16s} compile {rows[-1]['compile_s']:.2f} s", flush=True)
    return rows
