"""The in-process stack of tests/e2e, for the review loop's end-to-end tests."""

from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures)
