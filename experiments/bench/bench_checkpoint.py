"""CPU cost of one checkpoint save of an 8-seed PPO CartPole population: orbax on the raw
carry (one array per leaf) against rlx's Checkpointer (leaves packed into one array per dtype).

    .venv/bin/python experiments/bench/bench_checkpoint.py   # -> experiments/results/bench_checkpoint.json

CPU time (process_time, all threads) per save, until the save is on disk; median of 8 saves.
"""
import json
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from rlx import envs
from rlx.agents import ppo
from rlx.checkpoint import Checkpointer
from rlx.run import make_chunks

OUT = os.path.join(os.path.dirname(__file__), "..", "results", "bench_checkpoint.json")


def cpu_per_save(save, wait, n=8):
    save(0)
    wait()
    costs = []
    for i in range(1, n + 1):
        t = time.process_time()
        save(i)
        wait()
        costs.append(time.process_time() - t)
    return statistics.median(costs)


def main():
    env, ep = envs.make("CartPole-v1")
    agent = ppo.make(ppo.PPOConfig(total_timesteps=1000 * 512), env, ep)
    prog = make_chunks(agent)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (8,) + jnp.shape(x)), agent.default_hparams())
    carry = jax.jit(jax.vmap(prog.init, in_axes=(0, 0, None)))(keys, hp, None)
    history = {f"metric{i}": np.zeros((8, 500), np.float32) for i in range(12)}
    with tempfile.TemporaryDirectory() as d:
        manager = ocp.CheckpointManager(os.path.join(d, "raw"), options=ocp.CheckpointManagerOptions(
            max_to_keep=2, create=True, enable_async_checkpointing=True))
        raw = cpu_per_save(lambda i: manager.save(i, args=ocp.args.Composite(
            state=ocp.args.StandardSave(carry), history=ocp.args.StandardSave(history)), force=True),
            manager.wait_until_finished)
        ck = Checkpointer(os.path.join(d, "packed"), {"bench": 1})
        packed = cpu_per_save(lambda i: ck.save(i, carry, history), ck.wait)
    result = {"what": __doc__.strip().splitlines()[0], "leaves": len(jax.tree.leaves(carry)),
              "elements": int(sum(x.size for x in jax.tree.leaves(carry))),
              "cpu_ms_per_save_raw_orbax": round(1e3 * raw, 1), "cpu_ms_per_save_packed": round(1e3 * packed, 1),
              "load_before": os.getloadavg()}
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
