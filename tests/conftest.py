import hashlib
import importlib.metadata
import os
import sys
import tempfile

# Tests run on the host CPU; keep XLA from grabbing every core for intra-op threads so the
# two-core CI machine stays responsive, and keep compiled programs out of tests' timing.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the whole session: both xdist workers and every CLI
# subprocess a test starts (a killed-and-resumed run compiles the same program three times).
# Keyed by checkout and interpreter, so two checkouts or Pythons never share entries; jax keys
# each entry by the program's HLO and the compiler versions, so a code change is a cache miss.
_tag = hashlib.sha256(f"{os.path.dirname(os.path.abspath(__file__))}|{sys.version}".encode()).hexdigest()[:12]
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"rlx-test-jax-cache-{_tag}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# Three quarters of the suite's time is XLA compiling small programs that then run for well under
# a second. On jaxlib 0.10, XLA:CPU's older loop emitters compile them about 30-40% faster than its
# default fusion emitters, while the programs run about 1.6x slower, which the suite barely
# notices: from a cold cache it took 395 s instead of 510 s (experiments/results/
# test_suite_time.json and test_suite_time_default_emitters.json). The tests check what the
# programs compute, not how fast, and the ones that set their own XLA_FLAGS (tests/test_parallel.py,
# the sharded and distributed runs in tests/test_sweep.py) still run the default emitters and
# compare against this process's results. The CLI and the library never set these flags. jaxlib
# 0.11 removed the emitters flag (an unknown XLA flag aborts the process); there the suite instead
# lowers XLA's backend optimisation level from 3 to 1, which compiled the PPO benchmark's program
# in 3.5-3.7 s instead of 4.1-4.7 s (3 alternating rounds, fresh processes) and ran it about 10%
# slower; the 3.12 suite took 463 s instead of 618 s (experiments/results/test_suite_time_py312*).
# XLA_FLAGS that already name the flag win:
#   XLA_FLAGS=--xla_cpu_use_fusion_emitters=true make test    # jaxlib 0.10 on the default emitters
#   XLA_FLAGS=--xla_backend_optimization_level=3 make test    # jaxlib 0.11+ at XLA's default level
_SUITE_FLAG = ("--xla_cpu_use_fusion_emitters=false" if importlib.metadata.version("jaxlib").startswith("0.10.")
               else "--xla_backend_optimization_level=1")
if _SUITE_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_SUITE_FLAG}".strip()


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import collect, data, envs
from rlx.agents import ppo
from rlx.run import make_chunks

# Reference returns for Pendulum-v1 measured with rlx's own policies (see experiments/):
# uniform random actions ≈ −1196, a fully trained PPO policy ≈ −164.
PENDULUM_REF = dict(ref_random_return=-1196.0, ref_expert_return=-164.0)


class _PendulumPPO:
    """One PPO run on Pendulum-v1, advanced on demand in 5-iteration chunks (one compiled program).

    ``medium`` needs its state after 15 iterations and ``expert`` after 100; chunked, the run is
    bitwise the run of ``make_train(agent, num_iterations=n)`` (rlx.run.Chunks), and both datasets
    cost one PPO compile instead of two.
    """

    CHUNK = 5

    def __init__(self):
        self.env, self.params = envs.make("Pendulum-v1")
        cfg = ppo.PPOConfig(total_timesteps=300_000, num_envs=16, num_steps=128, update_epochs=10,
                            num_minibatches=16, normalize_obs=True, clip_value_loss=False)
        self.agent = ppo.make(cfg, self.env, self.params)
        self.hp = self.agent.default_hparams().replace(lr=jnp.float32(1e-3), gamma=jnp.float32(0.95),
                                                       ent_coef=jnp.float32(0.0))
        # No evaluation inside the chunks: eval_every beyond the horizon leaves only the last one.
        self._prog = make_chunks(self.agent, 100, eval_every=100, eval_episodes=1)
        self._advance = jax.jit(self._prog.advance, static_argnums=3)
        self._carry, self._done = jax.jit(self._prog.init)(jax.random.PRNGKey(0), self.hp), 0

    def state_at(self, iterations: int):
        assert iterations % self.CHUNK == 0 and iterations >= self._done, iterations
        while self._done < iterations:
            self._carry, _ = self._advance(self._carry, self.hp, np.int32(self._done), self.CHUNK)
            self._done += self.CHUNK
        return self._carry["state"]


@pytest.fixture(scope="session")
def pendulum_ppo():
    return _PendulumPPO()


@pytest.fixture(scope="session")
def medium(pendulum_ppo):
    """A PPO policy stopped early (15 iterations ≈ 31k steps) acting stochastically: 20k transitions.

    Its normalised score is ≈ 22 (it depends on PPO's exact random stream: 15 before the rollout
    keys were split up front, 21.4 before rlx.shuffle). The offline agents' learning tests must
    beat it. How hard that is depends on the data, not only on its score: with PPO keys 1 and 2
    (scores 28 and 31) IQL at 64×64 and 4k steps beat them by 18-65 points, with key 3 (score
    14) it stayed below even at 12k steps (measured, 4 seeds each).
    """
    run = pendulum_ppo
    state = run.state_at(15)
    meta = data.Metadata("Pendulum-v1", source="tests: PPO after 15 iterations", **PENDULUM_REF)
    ds = collect.rollouts(run.agent, run.agent.policy(state), jax.random.PRNGKey(1), num_steps=20_000, metadata=meta)
    return ds, run.env, run.params


@pytest.fixture(scope="session")
def expert(pendulum_ppo, medium):
    """Five Pendulum-v1 expert episodes (1000 transitions, deterministic actions).

    The ``medium`` recipe trained for 100 iterations (≈ 205k steps, about 25 s here): its
    rollouts score ≈ 105 on PENDULUM_REF's normalised scale. (Depends on ``medium`` so the shared
    run passes iteration 15 first.)
    """
    run = pendulum_ppo
    state = run.state_at(100)
    meta = data.Metadata("Pendulum-v1", source="tests: PPO after 100 iterations, deterministic", **PENDULUM_REF)
    ds = collect.rollouts(run.agent, run.agent.policy(state), jax.random.PRNGKey(2), num_steps=1000, num_envs=5,
                          deterministic=True, metadata=meta)
    return ds, run.env, run.params


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    # The Makefile runs `--dist loadgroup`: a group's tests all run on one xdist worker.
    # - Tests that need the generated Pendulum datasets share one group, so the datasets'
    #   PPO training and collection (~50 s, most of it compile) run once, not once per worker.
    # - Every other test is grouped by its file, so a module-scoped fixture (a subprocess on
    #   forced devices, a reference run) is built once, and a file's tests, which reuse each
    #   other's compiled programs, never compile the same program on both workers at once.
    for item in items:
        if {"medium", "expert"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("pendulum_datasets"))
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
