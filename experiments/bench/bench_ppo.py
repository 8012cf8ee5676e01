"""rlx side of the PPO CartPole benchmark: the anchors' exact configuration, timed.

    .venv/bin/python experiments/bench/bench_ppo.py --seeds 8 --devices all --out F.json

CartPole-v1, 4 envs × 128 steps, 4 epochs × 4 minibatches, 64×64 tanh, lr 2.5e-4
annealed, 500k steps, one deterministic evaluation at the end. ``--devices all`` is what
``rlx train`` does by default on a CPU (one XLA host device per core, runs sharded);
``--devices 1`` is a single XLA program.

FLOPs: XLA counts a loop body once, so the whole program's cost_analysis() undercounts.
We compile each piece that runs inside the loops (a rollout step's policy pass, the
post-rollout batched passes, a minibatch gradient step), take XLA's count for each and
multiply by its trip count.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--devices", default="1", help="'all' (one host device per core, the CLI default) or '1'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from rlx.parallel import compile_faster, use_all_cpu_cores
    if args.devices == "all":
        use_all_cpu_cores()
    compile_faster()  # as `rlx train` does (a no-op if XLA_FLAGS sets a level)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlx import envs, nets, objectives
    from rlx.agents import ppo
    from rlx.parallel import shard_runs, vmap_runs
    from rlx.run import make_train

    load_before = os.getloadavg()
    env, params = envs.make("CartPole-v1")
    config = ppo.PPOConfig(total_timesteps=args.steps)
    agent = ppo.make(config, env, params)
    hp = agent.default_hparams()
    train = vmap_runs(make_train(agent, eval_every=agent.num_iterations, eval_episodes=128), args.seeds)
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.seeds,) + jnp.shape(x)), hp)

    t0 = time.perf_counter()
    call, devices = shard_runs(train, args.seeds, parts=agent.parts)
    call.compile(keys, hp)
    compile_s = time.perf_counter() - t0
    run_s, final = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _, metrics = call(keys, hp)
        final = np.asarray(jax.block_until_ready(metrics["eval/return"]))[:, -1]
        run_s.append(time.perf_counter() - t0)
    env_steps = agent.num_iterations * agent.steps_per_iteration

    flops_step = flops_per_env_step(jax, jnp, nets, objectives, config, agent.spec)
    rate = args.seeds * env_steps / statistics.median(run_s)
    out = {
        "framework": "rlx", "algo": "ppo", "env": "CartPole-v1", "seeds": args.seeds, "steps": env_steps,
        "devices": [str(d) for d in devices], "compile_s": compile_s, "run_s": run_s,
        "run_s_median": statistics.median(run_s), "env_steps_per_s": rate,
        "final_return": final.tolist(), "final_return_median": float(np.median(final)),
        "xla_flops_per_env_step": flops_step, "gflops_per_s": flops_step * rate / 1e9,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("seeds", "devices", "compile_s", "env_steps_per_s",
                                          "final_return_median", "gflops_per_s")}))


def xla_flops(jax, fn, *args) -> float:
    """XLA's cost_analysis() FLOP count of ``jit(fn)`` at these arguments."""
    c = jax.jit(fn).lower(*args).compile().cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return float(c.get("flops", 0.0))


def minibatch_losses(nets, objectives, config, spec):
    """The bench's actor and critic, and each one's minibatch loss as PPO computes it (ppo_clip,
    entropy bonus 0.01, clipped value loss × 0.5): ``(actor, critic, actor_loss, critic_loss)``."""
    actor = nets.CategoricalPolicy(spec.num_actions, config.hidden, config.activation)
    critic = nets.ValueNet(config.hidden, config.activation)

    def actor_loss(p, o, a, old_lp, adv):
        dist = actor.apply(p, o)
        pb = objectives.PolicyBatch(dist.log_prob(a) - old_lp, (adv - adv.mean()) / (adv.std() + 1e-8), 0.0, 1.0)
        return objectives.ppo_clip(pb) - 0.01 * dist.entropy().mean()

    def critic_loss(p, o, v_old, target):
        return 0.5 * objectives.clipped_value_loss(critic.apply(p, o), v_old, target)

    return actor, critic, actor_loss, critic_loss


def flops_per_env_step(jax, jnp, nets, objectives, config, spec):
    """XLA-counted FLOPs per env step of one PPO iteration, piece by piece."""
    actor, critic, actor_loss, critic_loss = minibatch_losses(nets, objectives, config, spec)
    key = jax.random.PRNGKey(0)
    obs1 = jnp.zeros(spec.obs_shape)
    params = {"actor": actor.init(key, obs1), "critic": critic.init(key, obs1)}
    batch = config.num_envs * config.num_steps
    mb = batch // config.num_minibatches
    step_obs = jnp.zeros((config.num_envs,) + spec.obs_shape)
    batch_obs = jnp.zeros((batch,) + spec.obs_shape)

    rollout = xla_flops(jax, lambda p, o, k: actor.apply(p["actor"], o).sample(seed=k), params, step_obs, key)
    post = xla_flops(jax, lambda p, o, a: (critic.apply(p["critic"], o), critic.apply(p["critic"], o),
                                           actor.apply(p["actor"], o).log_prob(a)), params, batch_obs,
                     jnp.zeros(batch, jnp.int32))

    def loss(p, o, a, old_lp, adv, v_old, target):
        return actor_loss(p["actor"], o, a, old_lp, adv) + critic_loss(p["critic"], o, v_old, target)

    z = jnp.zeros(mb)
    grad = xla_flops(jax, jax.grad(loss), params, jnp.zeros((mb,) + spec.obs_shape), jnp.zeros(mb, jnp.int32),
                     z, z, z, z)
    per_iter = config.num_steps * rollout + post + config.update_epochs * config.num_minibatches * grad
    return per_iter / batch

if __name__ == "__main__":
    main()
