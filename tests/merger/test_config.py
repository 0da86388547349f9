from __future__ import annotations

from typing import Any

import pytest

from baro_merger.config import DEFAULT_CONFIG, parse_baro_config, read_baro_config
from baro_merger.errors import ConfigError
from baro_merger.hygiene import DEFAULT_ARTIFACT_PATTERNS


def test_empty_file_means_defaults() -> None:
    assert parse_baro_config("") == DEFAULT_CONFIG


def test_verify_section() -> None:
    config = parse_baro_config('[verify]\ncommand = "make test"\ntimeout = 30\n')
    assert config.verify is not None
    assert config.verify.command == "make test"
    assert config.verify.timeout_s == 30.0
    listed = parse_baro_config('[verify]\ncommand = ["pytest", "-q"]\n')
    assert listed.verify is not None and listed.verify.command == ("pytest", "-q")


def test_drop_extends_defaults() -> None:
    rules = parse_baro_config('[artifacts]\ndrop = ["*.bak"]\n').artifacts
    assert rules.patterns[: len(DEFAULT_ARTIFACT_PATTERNS)] == DEFAULT_ARTIFACT_PATTERNS
    assert rules.patterns[-1].pattern == "**/*.bak"


@pytest.mark.parametrize(
    "text",
    [
        "[artifacts\n",
        "artifacts = 3\n",
        '[artifacts]\ndrop = "x"\n',
        '[artifacts]\ndrop = ["../x"]\n',
        '[artifacts]\nreplace_defaults = "yes"\n',
        "[verify]\ncommand = 3\n",
        '[verify]\ncommand = "x"\ntimeout = -1\n',
    ],
)
def test_invalid_files_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ConfigError, match=r"\.baro\.toml"):
        parse_baro_config(text)


async def test_read_from_a_commit_not_from_a_working_tree(bench: Any) -> None:
    repo = bench.make_repo("user", {".baro.toml": '[verify]\ncommand = "true"\n', "a": "1"})
    committed = bench.git(repo, "rev-parse", "HEAD")
    (repo / ".baro.toml").write_text('[verify]\ncommand = "false"\n')
    config = await read_baro_config(repo, committed)
    assert config.verify is not None and config.verify.command == "true"
    bare = bench.make_repo("plain", {"a": "1"})
    assert await read_baro_config(bare, bench.git(bare, "rev-parse", "HEAD")) == DEFAULT_CONFIG
