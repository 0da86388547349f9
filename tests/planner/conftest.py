"""The in-process stack of the end-to-end tests, for runs planned by a model."""

from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures used by these tests)
