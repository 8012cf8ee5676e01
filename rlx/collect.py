"""Make offline datasets with rlx's own agents (this machine cannot download D4RL or Minari).

    ds = collect.rollouts(agent, agent.policy(state), key, num_steps=100_000)
    ds = collect.random(env, env_params, key, num_steps=100_000)

Everything is a pure function of the key, so a dataset is reproduced exactly from its seed.
Actions are stored in the env's own units (what the env received after the agent's
action wrapper), observations raw.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from rlx import data, envs


def _steps(vec_env, policy_fn, key, env_params, num_steps: int, num_envs: int):
    key, k_reset = jax.random.split(key)
    obs, env_state = vec_env.reset(k_reset, env_params)

    def step(carry, key):
        obs, env_state = carry
        k_act, k_env = jax.random.split(key)
        action = policy_fn(obs, jax.random.split(k_act, num_envs))
        next_obs, env_state, reward, term, trunc, info = vec_env.step(k_env, env_state, action, env_params)
        return (next_obs, env_state), (obs, action, reward, info["final_observation"], term, trunc)

    _, out = jax.lax.scan(step, (obs, env_state), jax.random.split(key, -(-num_steps // num_envs)))
    # [T, E, ...] → [E·T, ...] env by env, so each env's episodes stay contiguous.
    return [jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])[:num_steps] for x in out]


def rollouts(agent, policy, key, *, num_steps: int, num_envs: int = 8, deterministic: bool = False,
             env_params=None, metadata: data.Metadata | None = None) -> data.Dataset:
    """``num_steps`` transitions of ``agent.act(policy, ...)`` in the agent's evaluation env."""
    env_params = agent.env_params if env_params is None else env_params
    fn = _collector(agent, num_steps, num_envs, deterministic)
    out = fn(policy, key, env_params)
    obs, action, reward, next_obs, term, trunc = [np.asarray(x) for x in out]
    return data.from_arrays(obs, action, reward, next_obs, term, _close_episodes(term, trunc, num_envs),
                            metadata or data.Metadata())


_COLLECTORS: dict = {}


def _collector(agent, num_steps: int, num_envs: int, deterministic: bool):
    """One compiled collector per (agent, sizes): the policy is an argument, not a constant."""
    cache_key = (id(agent), num_steps, num_envs, deterministic)
    if cache_key not in _COLLECTORS:
        # Step the env below the agent's action wrapper, handing it env-unit actions, so the
        # dataset records exactly what the env received.
        to_env = getattr(agent.eval_env, "to_env_action", None)
        base = envs.VecEnv(agent.eval_env._env if to_env else agent.eval_env, num_envs)
        to_env = to_env or (lambda a: a)

        def collect(policy, key, env_params):
            act = jax.vmap(lambda o, k: to_env(agent.act(policy, o, k, deterministic)))
            return _steps(base, act, key, env_params, num_steps, num_envs)

        _COLLECTORS[cache_key] = (agent, jax.jit(collect))  # holding the agent keeps its id unique
    return _COLLECTORS[cache_key][1]


def random(env, env_params, key, *, num_steps: int, num_envs: int = 8,
           metadata: data.Metadata | None = None) -> data.Dataset:
    """``num_steps`` transitions of uniformly random actions."""
    space = env.action_space(env_params)
    sample = jax.vmap(lambda o, k: space.sample(k))
    out = jax.jit(lambda k: _steps(envs.VecEnv(env, num_envs), sample, k, env_params, num_steps, num_envs))(key)
    obs, action, reward, next_obs, term, trunc = [np.asarray(x) for x in out]
    return data.from_arrays(obs, action, reward, next_obs, term, _close_episodes(term, trunc, num_envs),
                            metadata or data.Metadata())


def _close_episodes(term, trunc, num_envs):
    """Mark the last step of each env's stream as truncated: its episode is cut by the budget."""
    trunc = np.array(trunc, bool)
    n = len(trunc)
    per_env = -(-n // num_envs)
    for end in range(per_env - 1, n, per_env):
        trunc[end] = trunc[end] or not term[end]
    trunc[-1] = trunc[-1] or not term[-1]
    return trunc


# ----------------------------------------------------------------------------- rlx data collect

QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")

def _concat(parts: list[data.Dataset], num_steps: int, metadata: data.Metadata) -> data.Dataset:
    arrays = {k: np.concatenate([np.asarray(getattr(p, k)) for p in parts])[:num_steps] for k in data.FIELDS}
    arrays["truncated"][-1] = arrays["truncated"][-1] or not arrays["terminated"][-1]
    return data.from_arrays(**arrays, metadata=metadata)


# PPO settings per env: each solves (or, for hopper, learns to hop in) its env on this CPU in minutes.
_PPO_RECIPES = {
    "Pendulum-v1": (dict(total_timesteps=300_000, num_envs=16, num_steps=128, update_epochs=10, num_minibatches=16,
                         normalize_obs=True, clip_value_loss=False),
                    dict(lr=1e-3, gamma=0.95, ent_coef=0.0)),
    "brax:hopper": (dict(total_timesteps=5_000_000, num_envs=32, num_steps=128, update_epochs=4, num_minibatches=8,
                         normalize_obs=True, clip_value_loss=False, hidden=(64, 64)),
                    dict(lr=3e-4, ent_coef=0.0)),
}


def make_dataset(env_id: str, quality: str, num_steps: int, seed: int = 0, chunks: int = 20,
                 progress: bool = True) -> data.Dataset:
    """Train a PPO agent on ``env_id`` and collect ``num_steps`` transitions of the asked quality.

    See :func:`make_datasets`, which trains once for several qualities.
    """
    return make_datasets(env_id, (quality,), num_steps, seed, chunks, progress)[quality]


def make_datasets(env_id: str, qualities, num_steps: int, seed: int = 0, chunks: int = 20,
                  progress: bool = True) -> dict[str, data.Dataset]:
    """Train one PPO agent on ``env_id`` and collect ``num_steps`` transitions of each quality.

    expert: the final policy (stochastic). medium: the first of ``chunks`` policies saved along
    training whose normalised score is within 30–60, else the one closest to 45.
    medium-replay: rollouts of the untrained policy and of every saved policy up to medium, in
    equal shares (PPO keeps no replay buffer, so this is the on-policy analogue of D4RL's
    "replay buffer up to medium").
    medium-expert: half each. Reference returns: R_random from uniformly random actions,
    R_expert from the expert's own rollouts. Deterministic given ``seed``; PPO's recipe per env
    is ``_PPO_RECIPES`` (default PPO settings for an env without one).
    """
    from rlx.agents import ppo
    from rlx.config import check_choice

    for q in qualities:
        check_choice("data collect", "quality", q, QUALITIES)
    if num_steps <= 0:
        raise ValueError(f"data collect: --steps must be positive, got {num_steps}")
    env, env_params = envs.make(env_id)
    key = jax.random.PRNGKey(seed)
    k_random, k_train, k_collect = jax.random.split(key, 3)
    rand = random(env, env_params, k_random, num_steps=max(num_steps if "random" in qualities else 0, 20_000))
    r_random = float(rand.episode_returns().mean())
    out = {}
    if "random" in qualities:
        out["random"] = _concat([rand], num_steps, data.Metadata(env_id, r_random, None,
                                                                 f"rlx data collect random seed={seed}"))
    if all(q == "random" for q in qualities):
        return out
    cfg_kwargs, hp_kwargs = _PPO_RECIPES.get(env_id, ({}, {}))
    agent = ppo.make(ppo.PPOConfig(**cfg_kwargs), env, env_params)
    hp = agent.default_hparams().replace(**{k: jnp.float32(v) for k, v in hp_kwargs.items()})
    per_chunk = max(1, agent.num_iterations // chunks)
    advance = jax.jit(lambda s: jax.lax.scan(lambda s, _: agent.update(s, hp), s, None, per_chunk)[0])
    state = agent.init(k_train, hp)
    policies = [agent.policy(state)]  # the untrained policy: where a replay buffer starts
    from tqdm.auto import tqdm

    for _ in tqdm(range(chunks), desc=f"training PPO on {env_id}", disable=not progress):
        state = advance(state)
        policies.append(agent.policy(state))
    # Each probe env must finish whole episodes, or the probe counts only the short (failed) ones.
    probe_steps = max(4_000, 8 * 2 * envs.episode_limit(env_params))
    probe = [rollouts(agent, pol, jax.random.fold_in(k_collect, i), num_steps=probe_steps)
             for i, pol in enumerate(policies)]
    probe_returns = [float(p.episode_returns().mean()) if len(p.episode_returns()) else float("nan")
                     for p in probe]
    expert = rollouts(agent, policies[-1], jax.random.fold_in(k_collect, 10_000), num_steps=num_steps)
    r_expert = float(expert.episode_returns().mean())
    trained = agent.num_iterations * agent.steps_per_iteration
    meta = data.Metadata(env_id, r_random, r_expert, f"rlx data collect seed={seed} (PPO, {trained} steps); "
                         "probe returns along training: " + ", ".join(f"{r:.0f}" for r in probe_returns))
    if "random" in out:
        out["random"] = out["random"].replace_metadata(ref_expert_return=r_expert)
    scores = [100 * (r - r_random) / (r_expert - r_random) for r in probe_returns]
    inside = [i for i, s in enumerate(scores) if 30 <= s <= 60 and i > 0]
    medium_at = inside[0] if inside else 1 + int(np.nanargmin([abs(s - 45) for s in scores[1:]]))
    tag = lambda q: dataclasses.replace(meta, source=f"{q}: {meta.source}")
    if "expert" in qualities:
        out["expert"] = expert.replace(metadata=tag("expert"))
    medium = rollouts(agent, policies[medium_at], jax.random.fold_in(k_collect, 20_000), num_steps=num_steps)
    if "medium" in qualities:
        out["medium"] = medium.replace(metadata=tag(f"medium (policy {medium_at}/{chunks})"))
    if "medium-expert" in qualities:
        half = num_steps // 2
        out["medium-expert"] = _concat([_concat([medium], half, meta), expert], num_steps, tag("medium-expert"))
    if "medium-replay" in qualities:
        per = -(-num_steps // (medium_at + 1))
        parts = [rollouts(agent, policies[i], jax.random.fold_in(k_collect, 30_000 + i), num_steps=per)
                 for i in range(medium_at + 1)]
        out["medium-replay"] = _concat(parts, num_steps, tag("medium-replay"))
    return {q: out[q] for q in qualities}


def collect_command(argv: list[str]) -> None:
    """``rlx data collect --env ENV --quality Q --steps N --out FILE``."""
    import argparse

    p = argparse.ArgumentParser(prog="rlx data collect", description="Make an offline dataset with rlx's own agents.")
    p.add_argument("action", choices=["collect"])
    p.add_argument("--env", required=True)
    p.add_argument("--quality", required=True, choices=QUALITIES)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="FILE.npz, FILE.hdf5 (D4RL layout) or a directory (Minari layout)")
    args = p.parse_args(argv)
    try:
        envs.validate_id(args.env)
        ds = make_dataset(args.env, args.quality, args.steps, args.seed)
    except ValueError as e:
        raise SystemExit(f"rlx: {e}")
    ext = os.path.splitext(args.out)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    {".npz": data.save_npz, ".hdf5": data.save_d4rl, ".h5": data.save_d4rl}.get(ext, data.save_minari)(ds, args.out)
    rets = ds.episode_returns()
    score = ds.normalized_score(rets).mean() if ds.metadata.ref_expert_return is not None else float("nan")
    print(f"wrote {args.out}: {len(ds):,} transitions, {len(rets)} episodes, mean return {rets.mean():.1f}, "
          f"normalised score {score:.1f} (R_random {ds.metadata.ref_random_return:.1f}, "
          f"R_expert {ds.metadata.ref_expert_return})")
