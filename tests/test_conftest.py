"""The test suite's own machinery (tests/conftest.py) does what the suite's time depends on."""


def test_xdist_groups_reach_the_scheduler(request):
    # conftest groups tests by file (and the dataset tests together) so a shared fixture is
    # built on one worker only. xdist applies a group by appending "@group" to the test's id;
    # pytest 9.2 changed how ids are stored and xdist 3.8's groups were then silently ignored
    # (pyproject pins pytest below 9.2). Outside `-n N --dist loadgroup` there is nothing to check.
    if not getattr(request.config.option, "loadgroup", False):
        return
    assert request.node.nodeid.endswith("@tests/test_conftest.py"), request.node.nodeid


def test_compile_flag_suits_the_jaxlib():
    # conftest shortens compiles with a flag per jaxlib: fusion emitters off on 0.10, and a lower
    # backend optimisation level on 0.11+, where the emitters flag is gone and would abort the run.
    import importlib.metadata
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if importlib.metadata.version("jaxlib").startswith("0.10."):
        assert "--xla_cpu_use_fusion_emitters=" in flags, flags
    else:
        assert "xla_cpu_use_fusion_emitters" not in flags and "--xla_backend_optimization_level=" in flags, flags
