"""docs/deploy.md and docs/metrics.md point at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "deploy.md", ROOT / "docs" / "metrics.md"]
OPERATOR_MADE = ("deploy/k8s/overlays/prod",)  # created by the operator while following the page


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_repository_paths_in_the_docs_exist(doc: Path) -> None:
    text = doc.read_text()
    paths = set(re.findall(r"`((?:deploy|docs|tests)/[\w./-]*\w/?)`", text))
    missing = sorted(
        p for p in paths if not p.startswith(OPERATOR_MADE) and not (ROOT / p).exists()
    )
    assert paths and not missing, missing


def test_the_walkthrough_names_every_secret_the_overlay_generates() -> None:
    overlay = yaml.safe_load((ROOT / "deploy/k8s/overlays/example/kustomization.yaml").read_text())
    text = (ROOT / "docs" / "deploy.md").read_text()
    for generator in overlay["secretGenerator"]:
        assert f"`{generator['name']}`" in text, generator["name"]
        for env_file in generator["envs"]:
            assert Path(env_file).name in text, env_file
