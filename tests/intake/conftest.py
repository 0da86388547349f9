"""The labelled goal set, loaded once for the intake tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

GOALS_PATH = Path(__file__).with_name("goals.jsonl")


def load_goals() -> list[dict[str, Any]]:
    with GOALS_PATH.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def labelled_goals() -> list[dict[str, Any]]:
    return load_goals()
