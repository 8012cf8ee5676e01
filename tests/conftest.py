import os

# Tests run on the host CPU; keep XLA from grabbing every core for intra-op threads so the
# two-core CI machine stays responsive, and keep compiled programs out of tests' timing.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
