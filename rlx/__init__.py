"""rlx: reinforcement-learning algorithms as pure JAX functions."""
