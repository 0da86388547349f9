"""The result of a run whose source is not a local path (a git URL, or a bundle uploaded by
``baro submit``): one git bundle for the object store, fetched later by ``baro fetch``.

The bundle holds the run's integration head and every attempt of every story under the
run's own refs (``refs/baro/<run>/integration``, ``refs/baro/<run>/<story>/<attempt>``),
minus what the base already has: it is thin, so the repository it is fetched into needs
the base commit, which the repository the run started from has. Nothing here touches a
user's repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baro_merger import naming
from baro_merger.errors import MergerError
from baro_merger.integration import integration_head, run_base
from baro_merger.plumbing import list_refs, repo_lock
from baro_shared.gitutil import git

# scratch or bookkeeping refs of the integration repository that a result never carries
_NOT_CARRIED = frozenset({"base", "published", "source"})
_NOT_CARRIED_UNDER = ("integrated/", "conflicted/", "delivered/", "source-refs/", "oversized/")


@dataclass(frozen=True)
class RunResult:
    base: str
    head: str
    commits: int
    files_changed: list[str]
    diffstat: str
    refs: list[str]  # what the bundle carries
    bundle: Path | None  # None: nothing beyond the base to carry

    @property
    def changed(self) -> bool:
        return self.head != self.base


async def bundle_result(repo: Path, run_id: str, out: Path) -> RunResult:
    """Write the run's result bundle to ``out`` (when there is anything to carry)."""
    async with repo_lock(repo):
        base = await run_base(repo, run_id)
        head = await integration_head(repo, run_id)
        prefix = naming.run_prefix(run_id)
        refs = await list_refs(repo, prefix)
        oversized = naming.oversized_prefix(run_id)
        # attempts holding a file refused as too large stay here (see delivery.preserve_refs)
        too_large = {
            prefix + name.removeprefix(oversized) for name in refs if name.startswith(oversized)
        }
        carried = sorted(
            name
            for name, oid in refs.items()
            if oid != base and _carried(name.removeprefix(prefix)) and name not in too_large
        )
        commits, files, stat = await _stats(repo, base, head)
        if not carried:
            return RunResult(base, head, commits, files, stat, [], None)
        made = await git(
            "bundle", "create", "--quiet", str(out), *carried, f"^{base}", cwd=repo, check=False
        )
        if made.returncode != 0:
            raise MergerError(f"could not bundle the result of run {run_id}: {made.stderr.strip()}")
        return RunResult(base, head, commits, files, stat, carried, out)


def _carried(rest: str) -> bool:
    return rest not in _NOT_CARRIED and not rest.startswith(_NOT_CARRIED_UNDER)


async def _stats(repo: Path, base: str, head: str) -> tuple[int, list[str], str]:
    count = await git("rev-list", "--count", f"{base}..{head}", cwd=repo)
    names = await git(
        "diff", "--no-ext-diff", "--no-renames", "--name-only", "-z", base, head, cwd=repo
    )
    stat = await git("diff", "--no-ext-diff", "--stat=100", base, head, cwd=repo)
    return int(count.out), [n for n in names.stdout.split("\0") if n], stat.stdout.rstrip()


def pushed_branch_name(slug: str, run_id: str) -> str:
    """The branch a URL run pushes: ``baro/<slug>-<run suffix>``. The remote is shared by
    every run (and every person) using it, so the name is unique by construction rather
    than by a look at the remote; a repeated delivery pushes the same name again."""
    suffix = naming.slugify(run_id)[-6:].strip("-") or "run"
    return (
        f"{naming.BRANCH_PREFIX}{naming.slugify(slug, naming.SLUG_MAX - len(suffix) - 1)}-{suffix}"
    )


async def stage_push(repo: Path, url: str, branch: str, head: str) -> None:
    """Make the integration repository look like a clone of ``url`` with ``branch`` at
    ``head``, so the publishing code pushes from it as from a user's repository."""
    async with repo_lock(repo):
        await git("config", "remote.origin.url", url, cwd=repo)
        await git("update-ref", f"refs/heads/{branch}", head, cwd=repo)
