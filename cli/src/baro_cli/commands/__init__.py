"""Each module registers its commands on ``baro_cli.app.app`` when imported."""

from baro_cli.commands import run, services  # noqa: F401
