"""`baro clean`: remove what runs kept — workspaces, integration repositories, refs/baro/<run>/
— and the per-source object caches runs borrow from.

Without arguments it lists what is kept (each source cache with its size) and removes
nothing. Delivered branches (``baro/<slug>``) are the result, never cleaned. A source cache
goes only when nothing borrows from it: cleaning runs trims the caches to
``BARO_SOURCE_CACHE_MAX_BYTES``, least recently used first; ``--caches`` removes every one
nothing borrows.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from baro_cli.app import app, fail, load_settings
from baro_cli.stack import EmbeddedStore
from baro_merger.delivery import cleanup_run
from baro_merger.errors import MergerError
from baro_merger.integration import integration_repo_path
from baro_merger.naming import ref_component
from baro_shared import objectcache
from baro_shared.gitutil import GitError, git_sync
from baro_shared.objectcache import age, describe_bytes
from baro_shared.settings import Settings


@dataclass
class Kept:
    """What one run left on this machine and in the user's repository."""

    run_id: str
    workspaces: list[Path] = field(default_factory=list)
    integration_repo: Path | None = None
    refs: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.workspaces:
            parts.append(
                f"{len(self.workspaces)} workspace(s) in {self.workspaces[0].parent}"
                f" ({', '.join(w.name for w in self.workspaces)})"
            )
        if self.integration_repo is not None:
            parts.append(f"the integration repository {self.integration_repo}")
        if self.refs:
            parts.append(f"{len(self.refs)} ref(s) under refs/baro/{ref_component(self.run_id)}/")
        return ", ".join(parts)


@app.command()
def clean(
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="RUN", help="The run to clean (`baro clean` lists them)."),
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Clean every run kept on this machine.")
    ] = False,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo", help="Repository whose refs/baro/ to clean (default: the current one)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    all_caches: Annotated[
        bool,
        typer.Option(
            "--caches", help="Remove every source object cache no kept run or workspace uses."
        ),
    ] = False,
) -> None:
    """Remove kept workspaces, integration repositories and refs/baro/<run>/ of finished runs,
    and source object caches nothing uses.

    Without RUN, --all or --caches: list what is kept. Delivered branches stay.
    """
    settings = load_settings()
    if run_id is not None and all_runs:
        raise fail("give either a run id or --all, not both")
    if run_id is not None and (not run_id.strip() or "/" in run_id or run_id.startswith(".")):
        raise fail(f"{run_id!r} is not a run id: `baro clean` lists the runs it keeps")
    user_repo = _user_repository(repo)
    kept = _inventory(settings, user_repo)
    if run_id is None and not all_runs and not all_caches:
        _list(kept, user_repo)
        _list_caches(settings)
        return
    if all_caches and run_id is None and not all_runs:
        _clean_caches(settings, 0, dry_run)
        return
    if all_runs and not dry_run:
        holder = EmbeddedStore(settings).holder()
        if holder is not None:
            raise fail(
                f"{holder.describe()} holds this machine's run store and its runs may still "
                "use what is kept: name the run to clean, or stop that process first"
            )
    targets = list(kept.values()) if all_runs else [kept.get(run_id or "") or Kept(run_id or "")]
    if not any(_has_anything(k) for k in targets):
        typer.echo(f"nothing to clean for run {run_id}" if run_id else "nothing to clean")
    for item in targets:
        if not _has_anything(item):
            continue
        if dry_run:
            typer.echo(f"would remove for run {item.run_id}: {item.describe()}")
            continue
        _remove(settings, item, user_repo)
    _clean_caches(settings, 0 if all_caches else settings.source_cache_max_bytes, dry_run)
    if user_repo is None:
        typer.echo("(not in a git repository: no refs/baro/ were looked at; pass --repo PATH)")


def _has_anything(item: Kept) -> bool:
    return bool(item.workspaces or item.integration_repo or item.refs)


def _user_repository(repo: Path | None) -> Path | None:
    target = (repo or Path(".")).expanduser()
    top = git_sync("-C", str(target), "rev-parse", "--show-toplevel", check=False)
    if top.returncode == 0:
        return Path(top.out)
    if repo is not None:
        raise fail(f"{target} is not a git repository: pass --repo with the repository baro ran on")
    return None


def _inventory(settings: Settings, user_repo: Path | None) -> dict[str, Kept]:
    kept: dict[str, Kept] = {}

    def entry(run_id: str) -> Kept:
        return kept.setdefault(run_id, Kept(run_id))

    workspaces = settings.workspaces_dir
    if workspaces.is_dir():
        for run_dir in sorted(p for p in workspaces.iterdir() if p.is_dir()):
            entry(run_dir.name).workspaces = sorted(p for p in run_dir.iterdir() if p.is_dir())
    integration = settings.integration_dir
    if integration.is_dir():
        for bare in sorted(integration.glob("*.git")):
            entry(bare.name.removesuffix(".git")).integration_repo = bare
    if user_repo is not None:
        listed = git_sync("-C", str(user_repo), "for-each-ref", "--format=%(refname)", "refs/baro/")
        for ref in listed.stdout.splitlines():
            parts = ref.split("/")
            if len(parts) > 3:
                entry(parts[2]).refs.append(ref)
    return dict(sorted(kept.items()))


def _list(kept: dict[str, Kept], user_repo: Path | None) -> None:
    if not kept:
        typer.echo(
            "baro keeps nothing on this machine" + (f" or in {user_repo}" if user_repo else "")
        )
        return
    typer.echo("kept by baro (nothing removed; `baro clean RUN` or `baro clean --all` removes it):")
    for item in kept.values():
        typer.echo(f"  {item.run_id}: {item.describe()}")


def _remove(settings: Settings, item: Kept, user_repo: Path | None) -> None:
    removed = []
    if item.workspaces:
        run_dir = settings.workspaces_dir / item.run_id
        for ws in item.workspaces:
            objectcache.release(ws / "repo" / ".git")
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"{len(item.workspaces)} workspace(s) ({run_dir})")
    try:
        result = asyncio.run(
            cleanup_run(
                integration_repo_path(settings.integration_dir, item.run_id), item.run_id, user_repo
            )
        )
    except (MergerError, GitError, OSError) as exc:
        raise fail(f"could not clean run {item.run_id}: {exc}", 1) from None
    if result.removed_repository:
        removed.append("its integration repository")
    if result.removed_refs:
        removed.append(
            f"{len(result.removed_refs)} ref(s) under refs/baro/{ref_component(item.run_id)}/"
            f" in {user_repo}"
        )
    what = ", ".join(removed) if removed else "nothing (already clean)"
    typer.echo(f"run {item.run_id}: removed {what}")


# --------------------------------------------------------------------------- source caches


def _cache_line(info: objectcache.CacheInfo) -> str:
    size = describe_bytes(info.bytes)
    if info.shared_bytes:
        size += (
            f" ({describe_bytes(info.shared_bytes)} of it shared with the repository by hard links)"
        )
    users = len(info.borrowers)
    used_by = f"used by {users} run repositor{'y' if users == 1 else 'ies'} or workspace(s)"
    return f"  {info.source}: {size}, last used {age(info.last_used)}, " + (
        used_by if users else "no run uses it"
    )


def _list_caches(settings: Settings) -> None:
    infos = objectcache.inventory(settings.sources_dir)
    if not infos:
        return
    own = sum(i.own_bytes for i in infos)
    typer.echo(
        f"source object caches in {settings.sources_dir} ({describe_bytes(own)} of their own "
        f"on disk, limit {describe_bytes(settings.source_cache_max_bytes)} "
        "(BARO_SOURCE_CACHE_MAX_BYTES); `baro clean --caches` removes those no run uses):"
    )
    for info in reversed(infos):
        typer.echo(_cache_line(info))


def _clean_caches(settings: Settings, limit: int, dry_run: bool) -> None:
    """Remove the least recently used caches nothing borrows, down to ``limit`` bytes."""
    root = settings.sources_dir
    if dry_run:
        for info in objectcache.trim(root, limit, dry_run=True):
            typer.echo(
                f"would remove the source cache of {info.source} "
                f"({describe_bytes(info.own_bytes)} freed)"
            )
        return
    objectcache.remove_leftovers(root)
    for info in objectcache.trim(root, limit):
        typer.echo(
            f"removed the source cache of {info.source} ({describe_bytes(info.own_bytes)} freed)"
        )
