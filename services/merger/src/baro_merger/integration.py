"""A run's integration repository: prepare it, import story results, integrate them,
and hand out bundles of the integration head.

Each run has one bare repository under the merger's cache directory. Nothing here
uses a working tree: merges are ``git merge-tree --write-tree``, commits are
``git commit-tree``, and refs move in atomic ``update-ref --stdin`` transactions that
check the old value. Every step is idempotent, because every bus message may arrive
twice. Ref names are listed in ``naming``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from baro_merger import naming
from baro_merger.config import read_baro_config
from baro_merger.errors import BundleError, MergerError, NotPrepared, SourceError
from baro_merger.hygiene import ArtifactRules, Change, Dropped, select_dropped
from baro_merger.plumbing import (
    ZERO_OID,
    RawChange,
    changed_entries,
    commit_tree,
    list_refs,
    ref_value,
    repo_lock,
    resolve_commit,
    revert_paths,
    three_way_merge,
    tree_of,
    update_refs,
)
from baro_shared.gitutil import GitError, git
from baro_shared.schemas import RepoSource, Story

_FETCH = ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules")
TITLE_MAX = 120
BODY_MAX = 4000


# --------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class PreparedRun:
    repo: Path  # the run's bare integration repository
    base: str  # the base commit, also at refs/baro/<run>/base
    base_ref: str | None  # what the base was resolved from (None: pinned by commit)
    files: list[str]  # files tracked at the base, for the planner
    already_prepared: bool


def integration_repo_path(root: Path, run_id: str) -> Path:
    return root / naming.integration_repo_name(run_id)


async def prepare_run(
    root: Path, run_id: str, source: RepoSource, *, continue_branch: str | None = None
) -> PreparedRun:
    """Create the run's bare integration repository under ``root`` and fetch its base.

    The base is the head of ``continue_branch`` (a baro branch of the source, for
    --continue), else ``source.commit``, else ``source.ref``, else the source's HEAD. A second call for
    the same run finds it prepared and returns the same base.
    Raises SourceError when the source, ref or commit cannot be read.
    """
    repo = integration_repo_path(root, run_id)
    base_ref = naming.base_ref(run_id)
    wanted, wanted_ref = _wanted(source, continue_branch)
    if continue_branch and source.commit:
        # the continued branch is the base; a commit pinned with it (the submitter's HEAD,
        # or the branch's head at submit time) must not override it
        source = RepoSource(kind=source.kind, location=source.location, ref=source.ref)
    async with repo_lock(repo):
        if _is_dir(repo):
            base = await ref_value(repo, base_ref)
            if base is not None:
                return PreparedRun(repo, base, wanted_ref, await _files_at(repo, base), True)
        repo.mkdir(parents=True, exist_ok=True)
        await git("init", "--quiet", "--bare", cwd=repo)
        # reflogs in the bare repository keep every integration head reachable for a while
        await git("config", "core.logAllRefUpdates", "always", cwd=repo)
        location = _location(source)
        base = await _fetch_base(repo, run_id, source, location, wanted)
        await update_refs(
            repo,
            [f"create {base_ref} {base}"]
            + [f"delete {ref}" for ref in await _scratch_refs(repo, run_id)],
        )
        return PreparedRun(repo, base, wanted_ref, await _files_at(repo, base), False)


def _wanted(source: RepoSource, continue_branch: str | None) -> tuple[str, str | None]:
    if continue_branch:
        try:
            branch = naming.normalize_baro_branch(continue_branch)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        return f"refs/heads/{branch}", f"refs/heads/{branch}"
    if source.commit:
        return source.commit, None
    if source.ref:
        return source.ref, source.ref
    return "HEAD", "HEAD"


def _location(source: RepoSource) -> str:
    if source.kind == "url":
        return source.location
    path = Path(source.location).expanduser().resolve()
    if source.kind == "path" and not path.is_dir():
        raise SourceError(f"repository {source.location} does not exist (not a directory)")
    if source.kind == "bundle" and not path.is_file():
        raise SourceError(f"source bundle {source.location} does not exist")
    return str(path)


async def _fetch_base(
    repo: Path, run_id: str, source: RepoSource, location: str, wanted: str
) -> str:
    scratch = naming.source_ref(run_id)
    direct = await git(*_FETCH, location, f"+{wanted}:{scratch}", cwd=repo, check=False)
    if direct.returncode == 0:
        base = await resolve_commit(repo, scratch)
        if base is not None and (source.commit is None or base.startswith(source.commit.lower())):
            return base
    # An abbreviated commit, a commit a bundle cannot serve (a bundle only serves its
    # tips), or a bundle without HEAD: fetch every ref of the source, then look.
    everything = f"+refs/*:{naming.source_refs_prefix(run_id)}*"
    fetched_all = await git(*_FETCH, location, everything, cwd=repo, check=False)
    if fetched_all.returncode != 0:
        raise SourceError(_fetch_failure(location, wanted, direct.stderr or fetched_all.stderr))
    if source.commit:
        base = await resolve_commit(repo, source.commit)
        if base is None:
            raise SourceError(f"commit {source.commit} is not in {location}")
        return base
    if source.kind == "bundle" and wanted == "HEAD":
        return await _only_tip(repo, run_id, location)
    raise SourceError(_fetch_failure(location, wanted, direct.stderr))


async def _only_tip(repo: Path, run_id: str, location: str) -> str:
    tips = set((await list_refs(repo, naming.source_refs_prefix(run_id))).values())
    commits = {await resolve_commit(repo, tip) for tip in tips} - {None}
    if len(commits) != 1:
        raise SourceError(
            f"source bundle {location} has no HEAD and {len(commits)} heads: "
            "name the ref or commit to start from"
        )
    return str(commits.pop())


def _fetch_failure(location: str, wanted: str, stderr: str) -> str:
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no details"
    if "couldn't find remote ref" in stderr or "not our ref" in stderr:
        return f"{location} has no {wanted!r} to start from (an empty repository, or a misspelled ref?)"
    return f"cannot read {wanted!r} from {location}: {detail}"


async def _scratch_refs(repo: Path, run_id: str) -> list[str]:
    refs = await list_refs(repo, naming.source_refs_prefix(run_id))
    scratch = naming.source_ref(run_id)
    return sorted(refs) + ([scratch] if await ref_value(repo, scratch) else [])


async def _files_at(repo: Path, commit: str) -> list[str]:
    result = await git("ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, cwd=repo)
    return [name for name in result.stdout.split("\0") if name]


def _is_dir(path: Path) -> bool:
    return path.is_dir()


async def run_base(repo: Path, run_id: str) -> str:
    """The run's base commit. Raises NotPrepared before prepare_run has completed."""
    base = await ref_value(repo, naming.base_ref(run_id)) if _is_dir(repo) else None
    if base is None:
        raise NotPrepared(f"run {run_id} has no integration repository at {repo}")
    return base


async def integration_head(repo: Path, run_id: str) -> str:
    """The integration head: the last integrated story's commit, or the base."""
    head = await ref_value(repo, naming.integration_ref(run_id)) if _is_dir(repo) else None
    return head or await run_base(repo, run_id)


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportedAttempt:
    ref: str  # refs/baro/<run>/<story>/<attempt>
    head: str
    already_imported: bool


async def import_story_bundle(
    repo: Path,
    run_id: str,
    story_id: str,
    attempt: int,
    bundle: Path,
    *,
    head: str | None = None,
) -> ImportedAttempt:
    """Fetch a story attempt's result bundle (base..head) into its attempt ref.

    ``head`` (the runner's reported head commit) picks the bundle's tip and is checked
    against an attempt imported before. Raises BundleError for an unreadable bundle, one
    whose prerequisites are missing here, or a head that differs from the recorded one.
    """
    ref = naming.attempt_ref(run_id, story_id, attempt)
    async with repo_lock(repo):
        await run_base(repo, run_id)
        existing = await ref_value(repo, ref)
        if existing is not None:
            return _same_attempt(ref, existing, head)
        heads = await git("bundle", "list-heads", str(bundle), cwd=repo, check=False)
        if heads.returncode != 0:
            raise BundleError(f"{bundle} is not a readable git bundle: {heads.stderr.strip()}")
        tip = choose_bundle_tip(_parse_heads(heads.stdout), head)
        fetched = await git(*_FETCH, str(bundle), f"{tip}:{ref}", cwd=repo, check=False)
        if fetched.returncode != 0:
            if "prerequisite" in fetched.stderr:
                raise BundleError(
                    f"bundle for story {story_id} attempt {attempt} was built on a commit "
                    f"this run's integration repository does not have: {fetched.stderr.strip()}"
                )
            raise BundleError(f"cannot import {bundle}: {fetched.stderr.strip()}")
        return ImportedAttempt(ref, tip, False)


async def record_attempt(
    repo: Path, run_id: str, story_id: str, attempt: int, head: str
) -> ImportedAttempt:
    """Record an attempt whose head is already here (an attempt that changed nothing
    has no bundle: its head is its base). Raises BundleError for an unknown commit."""
    ref = naming.attempt_ref(run_id, story_id, attempt)
    async with repo_lock(repo):
        existing = await ref_value(repo, ref)
        if existing is not None:
            return _same_attempt(ref, existing, head)
        commit = await resolve_commit(repo, head)
        if commit is None:
            raise BundleError(
                f"commit {head} of story {story_id} is not in the integration repository"
            )
        await update_refs(repo, [f"create {ref} {commit}"])
        return ImportedAttempt(ref, commit, False)


def _same_attempt(ref: str, existing: str, head: str | None) -> ImportedAttempt:
    if head is not None and not existing.startswith(head):
        raise BundleError(
            f"{ref} already holds {existing[:12]}, not {head[:12]}: "
            "one attempt number was used for two different results"
        )
    return ImportedAttempt(ref, existing, True)


def _parse_heads(output: str) -> list[tuple[str, str]]:
    heads = []
    for line in output.splitlines():
        oid, _, name = line.strip().partition(" ")
        if oid:
            heads.append((oid, name))
    return heads


def choose_bundle_tip(heads: list[tuple[str, str]], wanted: str | None) -> str:
    """The commit to take from a bundle's (oid, refname) list: the wanted head, else
    its only tip, else its HEAD. Raises BundleError when that is ambiguous or absent."""
    if wanted:
        for oid, _ in heads:
            if oid.startswith(wanted.lower()):
                return oid
        raise BundleError(f"the bundle does not contain head {wanted}")
    tips = {oid for oid, _ in heads}
    if len(tips) == 1:
        return tips.pop()
    for oid, name in heads:
        if name == "HEAD":
            return oid
    raise BundleError(f"the bundle has {len(tips)} heads and no HEAD: pass the head commit")


# --------------------------------------------------------------------------- integrate


@dataclass(frozen=True)
class Integrated:
    story_id: str
    attempt: int  # the attempt that is integrated (see already_integrated)
    commit: str  # the integration head after this story
    changed: bool  # False: nothing was left to add, so no commit was made for it
    dropped: list[Dropped]
    story_ref: str
    already_integrated: bool

    @property
    def dropped_paths(self) -> list[str]:
        return [d.path for d in self.dropped]


@dataclass(frozen=True)
class Conflict:
    story_id: str
    attempt: int
    paths: list[str]
    messages: list[str]  # git's CONFLICT lines, for the re-dispatch prompt
    story_ref: str
    integration_head: str  # unchanged


async def integrate_story(
    repo: Path,
    run_id: str,
    story: Story,
    attempt: int,
    *,
    story_base: str,
    goal: str,
    summary: str | None = None,
    rules: ArtifactRules | None = None,
) -> Integrated | Conflict:
    """Squash an imported story attempt onto the integration head as ONE commit.

    Three-way merge with base = ``story_base`` (where the attempt started), ours = the
    integration head, theirs = the attempt's head, after dropping the attempt's
    artifacts (``hygiene``; ``rules`` default to the base's .baro.toml). The commit's
    parent is the integration head; its message is the story's title, ``summary`` (or
    the description) and a ``Baro-Story: <id>`` trailer. On conflict nothing moves and
    the conflicting paths come back.

    Idempotent: when an attempt of this story is already integrated, that result comes
    back with ``already_integrated`` (its ``attempt`` may differ from the one asked
    for: the caller decides what a late duplicate means).
    Raises NotPrepared, MergerError (attempt not imported, unknown story base),
    ConfigError (invalid .baro.toml).
    """
    story_ref = naming.attempt_ref(run_id, story.id, attempt)
    async with repo_lock(repo):
        base = await run_base(repo, run_id)
        if rules is None:
            rules = (await read_baro_config(repo, base)).artifacts
        done = await _already_integrated(repo, run_id, story.id)
        if done is not None:
            done_attempt, commit = done
            dropped: list[Dropped] = []
            if done_attempt == attempt:
                _, _, raw = await _story_change(repo, story, attempt, story_ref, story_base)
                dropped = _select(raw, story, goal, rules)
            return Integrated(
                story.id,
                done_attempt,
                commit,
                changed=await _is_story_commit(repo, commit, story.id),
                dropped=dropped,
                story_ref=naming.attempt_ref(run_id, story.id, done_attempt),
                already_integrated=True,
            )

        story_head, start, raw = await _story_change(repo, story, attempt, story_ref, story_base)
        dropped = _select(raw, story, goal, rules)
        dropped_paths = {d.path for d in dropped}
        theirs = (
            await revert_paths(repo, story_head, [c for c in raw if c.path in dropped_paths])
            if dropped
            else await tree_of(repo, story_head)
        )
        current = await ref_value(repo, naming.integration_ref(run_id))
        head = current or base
        head_tree = await tree_of(repo, head)
        if head == start:
            tree = theirs  # the story started from the integration head: nothing to merge
        else:
            merged = await three_way_merge(repo, start, head_tree, theirs)
            if merged.conflicts:
                return Conflict(
                    story.id, attempt, merged.conflicts, merged.messages, story_ref, head
                )
            tree = merged.tree

        marker = naming.integrated_marker(run_id, story.id, attempt)
        if tree == head_tree:
            await update_refs(repo, [f"create {marker} {head}"])
            return Integrated(story.id, attempt, head, False, dropped, story_ref, False)
        commit = await commit_tree(repo, tree, head, story_commit_message(story, summary))
        await update_refs(
            repo,
            [
                f"update {naming.integration_ref(run_id)} {commit} {current or ZERO_OID}",
                f"create {marker} {commit}",
            ],
        )
        return Integrated(story.id, attempt, commit, True, dropped, story_ref, False)


async def _story_change(
    repo: Path, story: Story, attempt: int, story_ref: str, story_base: str
) -> tuple[str, str, list[RawChange]]:
    """(attempt head, story base commit, the attempt's changed entries)."""
    story_head = await ref_value(repo, story_ref)
    if story_head is None:
        raise MergerError(f"story {story.id} attempt {attempt} was not imported ({story_ref})")
    start = await resolve_commit(repo, story_base)
    if start is None:
        raise MergerError(f"story base {story_base} of story {story.id} is unknown here")
    return story_head, start, await changed_entries(repo, start, story_head)


def _select(raw: list[RawChange], story: Story, goal: str, rules: ArtifactRules) -> list[Dropped]:
    changes = [Change(c.path, c.status) for c in raw]
    return select_dropped(changes, story.write_surface, goal, rules)


async def _already_integrated(repo: Path, run_id: str, story_id: str) -> tuple[int, str] | None:
    """(integrated attempt, integration commit) from the story's marker ref, if any."""
    markers = await list_refs(repo, naming.integrated_prefix(run_id, story_id))
    if not markers:
        return None
    name, commit = min(markers.items())
    return int(name.rsplit("/", 1)[-1]), commit


async def _is_story_commit(repo: Path, commit: str, story_id: str) -> bool:
    """Did integrating the story make ``commit`` (rather than finding nothing to add)?"""
    trailer = await git(
        "log", "-1", "--format=%(trailers:key=Baro-Story,valueonly)", commit, cwd=repo
    )
    return trailer.out == " ".join(story_id.split())


def story_commit_message(story: Story, summary: str | None = None) -> str:
    """Title line, a blank line, the summary (or description), and the story trailer."""
    title = " ".join((story.title or "").split())[:TITLE_MAX] or f"Story {story.id}"
    body = (summary if summary is not None else story.description).strip()
    if len(body) > BODY_MAX:
        body = body[:BODY_MAX].rstrip() + "\n[...]"
    trailer = f"Baro-Story: {' '.join(story.id.split())}"
    return "\n\n".join(part for part in (title, body, trailer) if part) + "\n"


# --------------------------------------------------------------------------- bundles


async def create_bundle(
    repo: Path, run_id: str, base: str, head: str, out_path: Path
) -> Path | None:
    """Write a git bundle of ``base..head`` to ``out_path`` (atomically) and return it.

    The bundle's one ref is ``refs/baro/<run>/published``; its prerequisite is
    ``base``, so the consumer needs ``base`` already (a clone of the run's source has it).
    When ``head`` is ``base`` there is nothing to add and git cannot write an empty
    bundle: the result is None and the consumer starts from ``base`` itself.
    Raises MergerError for an unknown commit.
    """
    published = naming.published_ref(run_id)
    async with repo_lock(repo):
        base_commit = await resolve_commit(repo, base)
        head_commit = await resolve_commit(repo, head)
        if base_commit is None or head_commit is None:
            raise MergerError(f"cannot bundle {base}..{head}: unknown commit")
        if base_commit == head_commit:
            return None
        await update_refs(repo, [f"update {published} {head_commit}"])
        out_path.parent.mkdir(parents=True, exist_ok=True)
        partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
        try:
            await git(
                "bundle", "create", "--quiet", str(partial), published, f"^{base_commit}", cwd=repo
            )
            partial.replace(out_path)
        except GitError as exc:
            partial.unlink(missing_ok=True)
            raise MergerError(f"cannot write bundle {out_path}: {exc.stderr}") from None
        return out_path
