"""Benchmark (not a test): how long the merger takes to integrate N finished stories.

Each story starts from the run's base (as parallel stories do) and changes its own file,
so every integration after the first is a real three-way merge onto a moving head. The
clock covers what the merger does per finished story: import its bundle, then integrate
it (hygiene, merge, commit, ref update). Building the stories (the runners' part) is
not timed.

    .venv/bin/python bench/merger_bench.py [N ...]      (default: 5 20 50)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baro_merger.integration import Integrated, import_story_bundle, integrate_story, prepare_run
from baro_shared.gitutil import git_env
from baro_shared.schemas import RepoSource, Story

_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
SOURCE_FILES = 200


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env=git_env(_IDENTITY), check=True
    )
    return done.stdout.decode().strip()


def _source_repo(root: Path) -> Path:
    repo = root / "source"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    for i in range(SOURCE_FILES):
        (repo / "src" / f"module_{i:03}.py").write_text(f"VALUE_{i} = {i}\n" * 20)
    (repo / "package.json").write_text('{"name": "bench"}\n')
    (repo / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "initial")
    return repo


def _story_bundle(root: Path, integration_repo: Path, base: str, index: int) -> tuple[Path, str]:
    """A runner's result: one changed module plus the usual artifacts, as a bundle."""
    workspace = root / "ws" / str(index)
    workspace.mkdir(parents=True)
    _git(workspace, "init", "--quiet")
    _git(workspace, "fetch", "--quiet", str(integration_repo), base)
    _git(workspace, "checkout", "--quiet", "--detach", base)
    module = workspace / "src" / f"module_{index % SOURCE_FILES:03}.py"
    module.write_text(module.read_text() + f"STORY_{index} = True\n")
    (workspace / "prd.json").write_text(f'{{"story": {index}}}\n')
    (workspace / "package-lock.json").write_text(f'{{"lockfileVersion": 3, "n": {index}}}\n')
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "--quiet", "-m", f"story {index}")
    _git(workspace, "branch", "story")
    bundle = root / "bundles" / f"{index}.bundle"
    bundle.parent.mkdir(exist_ok=True)
    _git(workspace, "bundle", "create", "--quiet", str(bundle), "story", f"^{base}")
    return bundle, _git(workspace, "rev-parse", "HEAD")


async def _integrate_all(n: int, root: Path) -> float:
    source = _source_repo(root)
    run = f"bench-{n}"
    prepared = await prepare_run(root / "cache", run, RepoSource(kind="path", location=str(source)))
    stories = [_story_bundle(root, prepared.repo, prepared.base, i) for i in range(n)]
    started = time.perf_counter()
    for i, (bundle, head) in enumerate(stories):
        story = Story(id=f"S{i}", title=f"Story {i}", write_surface=[f"src/module_{i:03}.py"])
        await import_story_bundle(prepared.repo, run, story.id, 1, bundle, head=head)
        result = await integrate_story(
            prepared.repo, run, story, 1, story_base=prepared.base, goal="bench"
        )
        if not isinstance(result, Integrated) or not result.changed:
            raise RuntimeError(f"story {i} did not integrate: {result}")
    return time.perf_counter() - started


def measure_integration(n: int) -> float:
    """Seconds to import and integrate ``n`` story branches into one run."""
    with tempfile.TemporaryDirectory(prefix="baro-merger-bench-") as tmp:
        return asyncio.run(_integrate_all(n, Path(tmp)))


def main(argv: list[str]) -> None:
    for n in [int(a) for a in argv] or [5, 20, 50]:
        seconds = measure_integration(n)
        print(f"{n:>3} stories: {seconds:6.2f} s  ({seconds / n * 1000:5.0f} ms per story)")


if __name__ == "__main__":
    main(sys.argv[1:])
