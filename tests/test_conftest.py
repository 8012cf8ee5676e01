"""The test suite's own machinery (tests/conftest.py) does what the suite's time depends on."""


def test_xdist_groups_reach_the_scheduler(request):
    # conftest groups tests by file (and the dataset tests together) so a shared fixture is
    # built on one worker only. xdist applies a group by appending "@group" to the test's id;
    # pytest 9.2 changed how ids are stored and xdist 3.8's groups were then silently ignored
    # (pyproject pins pytest below 9.2). Outside `-n N --dist loadgroup` there is nothing to check.
    if not getattr(request.config.option, "loadgroup", False):
        return
    assert request.node.nodeid.endswith("@tests/test_conftest.py"), request.node.nodeid
