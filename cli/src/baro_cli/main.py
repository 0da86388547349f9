"""baro: one coding goal in, one clean branch out."""

from __future__ import annotations

import baro_cli.commands  # noqa: F401  (registers every command on the app)
from baro_cli.app import app
from baro_shared.sandbox import protect_this_process


def main() -> None:
    # this process holds the bus credential and the user's keys: its /proc entries and
    # memory are closed to other processes of the user (agents outside a sandbox)
    protect_this_process()
    app()


if __name__ == "__main__":
    main()
