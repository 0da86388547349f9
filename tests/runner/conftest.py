"""The in-process stack of tests/e2e, for the runner's tests through the bus."""

from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures)
