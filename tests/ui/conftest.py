"""Headless Chromium driven by Playwright, against the API (and the dashboard it serves)
of a live stack (tests/api). The browser is the machine's own (Debian's ``chromium``,
which .ci/run installs; ``BARO_CHROMIUM`` names another): Playwright's own download is
not used. Screenshots go to ``BARO_TEST_ARTIFACTS`` (default ``test-artifacts/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import api  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    named = os.environ.get("BARO_CHROMIUM")
    if named:
        return named
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    base = Path(os.environ.get("BARO_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    where = base / "ui" / request.node.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on this machine (apt-get install chromium; .ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()
