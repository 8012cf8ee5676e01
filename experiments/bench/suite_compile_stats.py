"""pytest plugin: each test's wall time and the jax compile time spent inside it, one JSON line per test.

Loaded by suite_time.py (``-p suite_compile_stats``); writes to $RLX_SUITE_STATS_DIR/<worker>.jsonl.
Compile time comes from jax's monitoring events (tracing, lowering to MLIR, XLA's backend
compile), so it covers the test process only, not CLI subprocesses a test starts.
"""
import collections
import json
import os
import time

import pytest

_events = collections.defaultdict(lambda: collections.defaultdict(float))
_current = [None]


def _listener(event, duration, **kwargs):
    if _current[0] is not None and event.startswith("/jax/core/compile/"):
        _events[_current[0]][event.rsplit("/", 1)[-1]] += duration


def pytest_configure(config):
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_listener)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current[0] = item.nodeid
    start = time.perf_counter()
    yield
    wall = time.perf_counter() - start
    _current[0] = None
    out = os.path.join(os.environ["RLX_SUITE_STATS_DIR"], f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl")
    with open(out, "a") as f:
        f.write(json.dumps({"test": item.nodeid, "wall_s": wall, **_events.pop(item.nodeid, {})}) + "\n")
