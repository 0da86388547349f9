"""baro: one coding goal in, one clean branch out."""

from __future__ import annotations

import baro_cli.commands  # noqa: F401  (registers every command on the app)
from baro_cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
