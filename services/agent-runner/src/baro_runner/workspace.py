"""A story's workspace: a private clone at the story's base commit, under baro's cache.

Never the user's working tree: the clone is made from the run's source (a local path, a git
URL, or a bundle from the object store), then moved to the base commit (fetching the
integration bundle when the base is an integration commit the source does not have). The
result goes back as a git bundle of base..head.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.gitutil import BARO_IDENTITY, GitError, git

STORY_BRANCH = "baro-story"


class WorkspaceError(RuntimeError):
    pass


@dataclass
class Workspace:
    root: Path  # per-attempt folder: repo/ is the clone, home/ the agent's private config home

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def workspace_path(base: Path, run_id: str, story_id: str, attempt: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in story_id)
    return base / run_id / f"{safe}-{attempt}"


async def prepare(
    root: Path,
    source: s.RepoSource,
    base_commit: str,
    *,
    source_bundle: Path | None = None,
    base_bundle: Path | None = None,
) -> Workspace:
    """Clone ``source`` into ``root/repo`` and check out ``base_commit`` on a story branch."""
    ws = Workspace(root)
    if root.exists():
        shutil.rmtree(root)
    for d in (ws.home, ws.scratch):
        d.mkdir(parents=True, exist_ok=True)
    origin = str(source_bundle) if source.kind == "bundle" and source_bundle else source.location
    try:
        await git("clone", "--quiet", "--no-checkout", origin, str(ws.repo), timeout=900)
        await git("remote", "remove", "origin", cwd=ws.repo)  # agents push nowhere
        if not await has_commit(ws.repo, base_commit):
            if base_bundle is None:
                raise WorkspaceError(
                    f"base commit {base_commit[:12]} is not in the source and no bundle was given"
                )
            await git(
                "fetch",
                "--quiet",
                "--no-tags",
                str(base_bundle),
                "+refs/*:refs/baro-base/*",
                cwd=ws.repo,
            )
            if not await has_commit(ws.repo, base_commit):
                raise WorkspaceError(
                    f"base commit {base_commit[:12]} is not in the integration bundle"
                )
        await git("checkout", "--quiet", "-B", STORY_BRANCH, base_commit, cwd=ws.repo)
    except GitError as exc:
        raise WorkspaceError(f"could not prepare the workspace: {exc}") from exc
    return ws


async def has_commit(repo: Path, commit: str) -> bool:
    res = await git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo, check=False)
    return res.returncode == 0


@dataclass(frozen=True)
class Change:
    head: str
    changed_files: list[str]


async def commit_result(ws: Workspace, base_commit: str, title: str) -> Change:
    """Commit whatever the agent left uncommitted; return the head and the files it changed."""
    repo = ws.repo
    await git("add", "-A", cwd=repo)
    staged = await git("diff", "--cached", "--quiet", cwd=repo, check=False)
    if staged.returncode == 1:
        await git(
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            title[:200] or "story",
            cwd=repo,
            env=BARO_IDENTITY,
        )
    head = (await git("rev-parse", "HEAD", cwd=repo)).out
    await git(
        "update-ref", f"refs/heads/{STORY_BRANCH}", head, cwd=repo
    )  # the agent may have switched
    if head == base_commit:
        return Change(head, [])
    diff = await git("diff", "--name-only", "--no-renames", base_commit, head, cwd=repo)
    return Change(head, [line for line in diff.stdout.splitlines() if line])


async def write_bundle(ws: Workspace, base_commit: str, out: Path) -> None:
    await git("bundle", "create", "--quiet", str(out), STORY_BRANCH, f"^{base_commit}", cwd=ws.repo)
