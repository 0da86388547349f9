"""The whole stack on a real nats-server, real git and the scripted agent (see tests/e2e)."""

from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures)
