"""`baro doctor` against the real CLIs: each found at the pinned version, its key named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baro_shared.backends import TESTED_VERSIONS
from tests.cli_contract.conftest import BACKENDS, ROOT, cli_path
from tests.doctor.test_doctor import CREDENTIAL_VARS

pytestmark = [pytest.mark.cli, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent


def test_the_pinned_versions_are_the_contract_tiers() -> None:
    pins = json.loads((ROOT / "tests" / "cli_contract" / "package.json").read_text())
    npm = pins["dependencies"]
    assert {
        "claude": npm["@anthropic-ai/claude-code"],
        "codex": npm["@openai/codex"],
        "opencode": npm["opencode-ai"],
        "pi": npm["@earendil-works/pi-coding-agent"],
    } == TESTED_VERSIONS


def doctor(tmp_path: Path, backend: str, **extra: str) -> dict[str, dict[str, str | None]]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "BARO_CACHE_DIR": str(tmp_path / "cache"),
            "BARO_STATE_DIR": str(tmp_path / "state"),
            **{f"BARO_{name.upper()}_BIN": cli_path(name) for name in BACKENDS},
            **extra,
        }
    )
    out = subprocess.run(
        [str(BIN / "baro"), "doctor", "--backend", backend, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(out.stdout)
    assert out.returncode == (0 if report["ok"] else 1)
    return {c["name"]: c for c in report["checks"]}


def test_each_real_cli_is_found_at_the_tested_version(tmp_path: Path) -> None:
    key = "sk-ant-doctor-real-cli-0123456789"
    found = doctor(tmp_path, "claude", ANTHROPIC_API_KEY=key, OPENAI_API_KEY=key)
    for name in BACKENDS:  # all four answer --version, chosen or not
        assert found[name]["status"] == "ok", found[name]
        assert f"{name} {TESTED_VERSIONS[name]} at " in (found[name]["detail"] or "")
        assert "(the tested version)" in (found[name]["detail"] or "")
        assert found[f"{name} credentials"]["status"] == "ok"
    assert key not in json.dumps(found)
    # --version ran with throwaway config homes: nothing of the CLIs' landed in the home
    assert list((tmp_path / "home").iterdir()) == []


def test_real_clis_without_keys_fail_the_chosen_one_and_warn_the_rest(tmp_path: Path) -> None:
    found = doctor(tmp_path, "codex")
    wanted = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}
    for name in BACKENDS:
        assert found[name]["status"] == "ok"
        cred = found[f"{name} credentials"]
        assert cred["status"] == ("fail" if name == "codex" else "warn")
        assert wanted.get(name, "provider key") in (cred["detail"] or "")
        assert cred["fix"] and "export " in cred["fix"]
