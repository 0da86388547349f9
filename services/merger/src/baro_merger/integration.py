"""A run's integration repository: prepare it, import story results, integrate them,
and hand out bundles of the integration head.

Each run has one bare repository under the merger's cache directory. Nothing here
uses a working tree: merges are ``git merge-tree --write-tree``, commits are
``git commit-tree``, and refs move in atomic ``update-ref --stdin`` transactions that
check the old value. Every step is idempotent, because every bus message may arrive
twice. Ref names are listed in ``naming``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from baro_merger import naming
from baro_merger.admission import (
    DELETED_MODE,
    GITLINK_MODE,
    SYMLINK_MODE,
    Entry,
    Policy,
    Refused,
    guard,
    outside_surface,
    resolve_policy,
)
from baro_merger.config import BaroConfig, read_baro_config
from baro_merger.errors import BundleError, MergerError, NotPrepared, SourceError
from baro_merger.hygiene import ArtifactRules, Change, Dropped, select_dropped
from baro_merger.identity import (
    BARO,
    CommitIdentity,
    co_author_trailer,
    load_identity,
    resolve_identity,
    store_identity,
)
from baro_merger.plumbing import (
    TREE_MODE,
    ZERO_OID,
    MergeCommits,
    ObjectLookup,
    RawChange,
    blob_texts,
    changed_entries,
    commit_tree,
    list_refs,
    peel,
    ref_value,
    repo_lock,
    resolve_commit,
    revert_paths,
    three_way_merge,
    tree_of,
    update_refs,
)
from baro_shared import bundles, objectcache
from baro_shared.bundles import BundleHeader
from baro_shared.gitutil import GitError, own_git, tree_listing
from baro_shared.schemas import RepoSource, Story

# A story's pack is checked as fsck checks objects, warnings as errors, except a tree
# entry git itself may take for .git on another file system (".GIT", ".g\u200cit"): the
# merger refuses that path by its own rule (git_path) and keeps the rest of the story.
_INDEX_PACK = ("index-pack", "--stdin", "--fix-thin", "--strict=hasDotgit=ignore")
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
    identity: CommitIdentity = BARO  # who the run's story commits are by (identity.py)
    cache_created: bool = False  # the source had no cache yet (a cold start)


def integration_repo_path(root: Path, run_id: str) -> Path:
    return root / naming.integration_repo_name(run_id)


async def prepare_run(
    root: Path,
    run_id: str,
    source: RepoSource,
    *,
    continue_branch: str | None = None,
    author_name: str | None = None,
    author_email: str | None = None,
    sources: Path | None = None,
    store: objectcache.ObjectFiles | None = None,
    scratch: Path | None = None,
    shown_as: str | None = None,
) -> PreparedRun:
    """Create the run's bare integration repository under ``root``, borrowing the
    source's objects from its cache under ``sources`` (default ``root``'s sibling
    ``sources``; see ``baro_shared.objectcache``), and record its base.

    The base is the head of ``continue_branch`` (a baro branch of the source, for
    --continue), else ``source.commit``, else ``source.ref``, else the source's HEAD. The
    source is read only for what the cache lacks: a bundle source names an object of
    ``store``, downloaded into ``scratch`` only then (a local bundle file without
    ``store``). A second call for the same run finds it prepared and returns the same base
    and commit identity. The run's commit identity is resolved here (``author_*``:
    BARO_GIT_AUTHOR_*), see ``baro_merger.identity``.
    Raises SourceError when the source, ref or commit cannot be read (its message names
    the source as ``shown_as`` when given: what the user knows it as, e.g. the uploaded
    bundle's object-store name), SigningError when the user's signing key cannot sign.
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
                files = await _files_at(repo, base)
                return PreparedRun(repo, base, wanted_ref, files, True, await load_identity(repo))
        cache = objectcache.cache_of(sources or root.parent / "sources", source)
        from_store = source.kind == "bundle" and store is not None
        location = source.location if from_store else _location(source)

        made: list[Path] = []

        async def locate() -> str:
            if store is None or not from_store:
                return location
            if scratch is None:
                made.append(Path(tempfile.mkdtemp(prefix="baro-src-")))
            try:
                return await objectcache.locate_bundle(
                    cache, source.location, store, scratch or made[-1]
                )
            except objectcache.CacheError as exc:
                raise SourceError(str(exc)) from None

        repo.mkdir(parents=True, exist_ok=True)
        try:
            obtained = await objectcache.obtain(
                cache,
                objectcache.describe(source),
                locate,
                wanted,
                commit=source.commit,
                seed=Path(location) if source.kind == "path" else None,
                borrower=repo,
            )
            base = _base_of(obtained.fetched, source, location, wanted)
        except SourceError as exc:
            objectcache.release(repo)
            shutil.rmtree(repo, ignore_errors=True)
            if shown_as is None:
                raise
            raise SourceError(str(exc).replace(location, shown_as)) from None
        except BaseException:
            objectcache.release(repo)
            shutil.rmtree(repo, ignore_errors=True)
            raise
        finally:
            for downloads in made:
                shutil.rmtree(downloads, ignore_errors=True)
        await own_git("init", "--quiet", "--bare", cwd=repo)
        # reflogs in the bare repository keep every integration head reachable for a while
        await own_git("config", "core.logAllRefUpdates", "always", cwd=repo)
        objectcache.attach(cache, repo)
        author = await resolve_identity(
            repo, source, author_name=author_name, author_email=author_email
        )
        await store_identity(repo, author)
        await update_refs(repo, [f"create {base_ref} {base}"])
        files = await _files_at(repo, base)
        return PreparedRun(repo, base, wanted_ref, files, False, author, obtained.created)


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


def _base_of(found: objectcache.Fetched, source: RepoSource, location: str, wanted: str) -> str:
    """The run's base from what the cache found, or the SourceError saying why not."""
    if found.commit is not None:
        return found.commit
    if found.failed:
        raise SourceError(_fetch_failure(location, wanted, found.stderr))
    if source.commit:
        raise SourceError(f"commit {source.commit} is not in {location}")
    if source.kind == "bundle" and wanted == "HEAD":
        if len(found.tips) != 1:
            raise SourceError(
                f"source bundle {location} has no HEAD and {len(found.tips)} heads: "
                "name the ref or commit to start from"
            )
        return found.tips[0]
    raise SourceError(_fetch_failure(location, wanted, found.stderr))


def _fetch_failure(location: str, wanted: str, stderr: str) -> str:
    if "couldn't find remote ref" in stderr or "not our ref" in stderr:
        return f"{location} has no {wanted!r} to start from (an empty repository, or a misspelled ref?)"
    return f"cannot read {wanted!r} from {location}: {objectcache.git_line(stderr)}"


async def _files_at(repo: Path, commit: str) -> list[str]:
    result = await own_git("ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, cwd=repo)
    return [name for name in result.stdout.split("\0") if name]


def _is_dir(path: Path) -> bool:
    return path.is_dir()


async def run_base(repo: Path, run_id: str) -> str:
    """The run's base commit. Raises NotPrepared before prepare_run has completed."""
    base = await ref_value(repo, naming.base_ref(run_id)) if _is_dir(repo) else None
    if base is None:
        raise NotPrepared(f"run {run_id} has no integration repository at {repo}")
    return base


@dataclass(frozen=True)
class RunRefs:
    """Every ref of a run (``refs/baro/<run>/...``), read in one ``for-each-ref``: what an
    integration step needs to know of them, read once under the repository's lock."""

    run_id: str
    refs: dict[str, str]

    @property
    def base(self) -> str:
        return self.refs[naming.base_ref(self.run_id)]

    @property
    def integration(self) -> str | None:
        return self.refs.get(naming.integration_ref(self.run_id))

    @property
    def head(self) -> str:
        """The integration head: the last integrated story's commit, or the base."""
        return self.integration or self.base

    def attempt(self, story_id: str, attempt: int) -> str | None:
        return self.refs.get(naming.attempt_ref(self.run_id, story_id, attempt))

    def conflicted(self, story_id: str, attempt: int) -> str | None:
        """The integration head the attempt conflicted with, if it did."""
        return self.refs.get(naming.conflicted_marker(self.run_id, story_id, attempt))

    def integrated(self, story_id: str) -> tuple[int, str] | None:
        """(integrated attempt, integration commit) from the story's marker ref, if any."""
        prefix = naming.integrated_prefix(self.run_id, story_id)
        markers = {name: oid for name, oid in self.refs.items() if name.startswith(prefix)}
        if not markers:
            return None
        name, commit = min(markers.items())
        return int(name.rsplit("/", 1)[-1]), commit


async def run_refs(repo: Path, run_id: str) -> RunRefs:
    """The run's refs. Raises NotPrepared before prepare_run has completed."""
    refs = await list_refs(repo, naming.run_prefix(run_id)) if _is_dir(repo) else {}
    if naming.base_ref(run_id) not in refs:
        raise NotPrepared(f"run {run_id} has no integration repository at {repo}")
    return RunRefs(run_id, refs)


async def integration_head(repo: Path, run_id: str) -> str:
    """The integration head: the last integrated story's commit, or the base."""
    head = await ref_value(repo, naming.integration_ref(run_id)) if _is_dir(repo) else None
    return head or await run_base(repo, run_id)


class OpenRun:
    """A run's integration repository while a series of steps holds its lock (the stories
    of one batch, then the bundle of its head).

    The run's refs are read once, when the series starts, and kept current in memory by
    every ref the steps move, so each step sees what the ones before it did. The steps'
    own ref changes are staged and applied together in one ``update-ref --stdin``
    transaction that checks each ref's old value (``write``, and when the series ends
    without an error); a series that dies before it has moved none of them and is done
    again whole (the objects it imported stay, their refs are written with the rest). Nothing is
    answered before that transaction. Every object lookup of the series goes to one
    ``cat-file`` process (``objects``), every throwaway commit of its merges to one
    ``hash-object`` process (``merges``).
    """

    def __init__(self, repo: Path, refs: RunRefs) -> None:
        self.repo = repo
        self.run_id = refs.run_id
        self.refs = refs
        self.objects = ObjectLookup(repo)
        self.merges = MergeCommits(repo)
        self._staged: dict[str, tuple[str, str | None]] = {}  # ref -> (new, old or None)

    def stage(self, ref: str, new: str, old: str | None = None) -> None:
        """Move ``ref`` to ``new`` at the next ``write``; the series sees it moved now.
        ``old``: the value the ref must still have then (ZERO_OID: it must not exist),
        None: any value."""
        if ref in self._staged:  # a transaction moves a ref once: from where it was first
            old = self._staged[ref][1]
        self._staged[ref] = (new, old)
        self.refs.refs[ref] = new

    async def write(self) -> None:
        """Apply what was staged, atomically: every ref or none."""
        staged, self._staged = self._staged, {}
        await update_refs(
            self.repo,
            [
                f"update {ref} {new}" + (f" {old}" if old else "")
                for ref, (new, old) in staged.items()
            ],
        )

    async def import_bundle(
        self, story_id: str, attempt: int, bundle: Path, *, head: str | None = None
    ) -> ImportedAttempt:
        """``import_story_bundle`` within the series."""
        ref = naming.attempt_ref(self.run_id, story_id, attempt)
        existing = self.refs.attempt(story_id, attempt)
        if existing is not None:
            return _same_attempt(ref, existing, head)
        header = read_bundle_header(bundle)
        tip = choose_bundle_tip(header.heads, head)
        if header.prerequisites:
            found = await self.objects.info(header.prerequisites)
            missing = [
                p[:12] for p, info in zip(header.prerequisites, found, strict=True) if not info
            ]
            if missing:
                raise BundleError(
                    f"bundle for story {story_id} attempt {attempt} was built on a commit "
                    f"this run's integration repository does not have: {', '.join(missing)}"
                )
        # The pack is indexed strictly, not fetched: every object it brings is checked
        # and every object they name must be here (in the pack, or already connected),
        # which is what the fetch's connectivity walk proved, at a third of its cost
        with bundle.open("rb") as pack:
            pack.seek(header.pack_offset)
            indexed = await own_git(*_INDEX_PACK, cwd=self.repo, input=pack, check=False)
        if indexed.returncode != 0:
            raise BundleError(f"cannot import {bundle}: {indexed.stderr.strip()}")
        (tip_info,) = await self.objects.info([tip])
        if tip_info is None or tip_info[1] != "commit":
            raise BundleError(f"the bundle does not contain the commit {tip[:12]}")
        self.stage(ref, tip, ZERO_OID)  # written with the series' other refs
        return ImportedAttempt(ref, tip, False)

    async def integrate(
        self,
        story: Story,
        attempt: int,
        *,
        story_base: str,
        goal: str,
        summary: str | None = None,
        rules: ArtifactRules | None = None,
        policy: Policy | None = None,
        mode: str | None = None,
        agent: str | None = None,
    ) -> Integrated | Conflict | Rejected:
        """``integrate_story`` within the series, on the head the steps before it left."""
        return await _integrate(
            self, story, attempt, story_base=story_base, goal=goal, summary=summary,
            rules=rules, policy=policy, mode=mode, agent=agent,
        )  # fmt: skip

    async def bundle_head(self, out_path: Path) -> Path | None:
        """``create_bundle`` of the run's base..head as the series leaves it, written while
        what the series staged is (with the bundle's ref, in the same transaction)."""
        head = self.refs.head
        if head == self.refs.base:
            await self.write()
            return None
        published = naming.published_ref(self.run_id)
        self.stage(published, head)
        bundle = asyncio.create_task(
            _write_bundle(self.repo, published, head, self.refs.base, out_path)
        )
        try:
            await self.write()
        except BaseException:
            with contextlib.suppress(Exception):
                await bundle
            raise
        return await bundle


@asynccontextmanager
async def open_run(repo: Path, run_id: str) -> AsyncIterator[OpenRun]:
    """Hold the run's repository for a series of steps (``OpenRun``); what they staged is
    written when the series ends without an error. Raises NotPrepared before prepare_run
    has completed."""
    async with repo_lock(repo):
        run = OpenRun(repo, await run_refs(repo, run_id))
        try:
            yield run
            await run.write()
        finally:
            try:
                await run.objects.close()
            finally:
                await run.merges.close()


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
    async with open_run(repo, run_id) as run:
        return await run.import_bundle(story_id, attempt, bundle, head=head)


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


def read_bundle_header(bundle: Path) -> BundleHeader:
    """``bundles.read_bundle_header``; raises BundleError for a file that is not a full git
    bundle of SHA-1 objects."""
    try:
        return bundles.read_bundle_header(bundle)
    except bundles.BundleUnreadable as exc:
        raise BundleError(str(exc)) from None


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
    refused: list[Refused] = field(default_factory=list)  # by the guards, left out
    outside_surface: list[str] = field(default_factory=list)  # integrated anyway (warn)
    policy: Policy = "warn"
    nothing_left: bool = False  # every change of the story was dropped or refused
    files: list[str] = field(default_factory=list)  # what the story's commit changed
    run_base: str | None = None  # the run's base commit

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


@dataclass(frozen=True)
class Rejected:
    """Strict policy: the attempt changed files outside its write surface, so none of
    it is integrated (it stays at ``story_ref``)."""

    story_id: str
    attempt: int
    outside_surface: list[str]
    refused: list[Refused]
    dropped: list[Dropped]
    story_ref: str
    policy: Policy = "strict"


@dataclass(frozen=True)
class _Judged:
    """A story attempt's change and what the trust boundary decided about it."""

    head: str  # the attempt's head commit
    start: str  # the commit it started from
    tree: str  # the head's tree
    start_tree: str
    raw: list[RawChange]
    refused: list[Refused]
    dropped: list[Dropped]
    outside_surface: list[str]

    @property
    def left_out(self) -> list[RawChange]:
        paths = {r.path for r in self.refused} | {d.path for d in self.dropped}
        return [c for c in self.raw if c.path in paths]

    @property
    def admitted(self) -> list[str]:
        """The paths of the change that go into the integration."""
        out = {c.path for c in self.left_out}
        return [c.path for c in self.raw if c.path not in out]


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
    policy: Policy | None = None,
    mode: str | None = None,
    agent: str | None = None,
) -> Integrated | Conflict | Rejected:
    """Squash an imported story attempt onto the integration head as ONE commit.

    First the trust boundary (``admission``): the guards refuse paths by rule, hygiene
    drops artifacts (``rules`` default to the base's .baro.toml), and the paths outside
    the story's write surface are found. Under the ``strict`` policy (``policy``, else
    the base's ``[surface] policy``, else strict for a parallel ``mode``) a story with
    such paths is Rejected and nothing moves.

    Then a three-way merge with base = ``story_base`` (where the attempt started), ours =
    the integration head, theirs = the attempt's head minus what was refused or dropped.
    The commit's parent is the integration head; its message is the story's title,
    ``summary`` (or the description), a ``Baro-Story: <id>`` trailer and a
    ``Co-Authored-By`` trailer naming baro and the ``agent``; it is by the identity the
    run was prepared with, signed when that identity signs. On conflict
    nothing moves but a marker of the head it conflicted with, and the conflicting paths
    come back.

    Idempotent: when an attempt of this story is already integrated, that result comes
    back with ``already_integrated`` (its ``attempt`` may differ from the one asked
    for: the caller decides what a late duplicate means); an attempt that conflicted is
    merged again with the head it conflicted with, never with a later one, so it
    conflicts again even when stories integrated since (later in its batch) would let it
    through: the conflict may have been answered, and the story re-run, already.
    Raises NotPrepared, MergerError (attempt not imported, unknown story base),
    ConfigError (invalid .baro.toml).
    """
    async with open_run(repo, run_id) as run:
        return await run.integrate(
            story, attempt, story_base=story_base, goal=goal, summary=summary, rules=rules,
            policy=policy, mode=mode, agent=agent,
        )  # fmt: skip


async def _integrate(
    run: OpenRun,
    story: Story,
    attempt: int,
    *,
    story_base: str,
    goal: str,
    summary: str | None,
    rules: ArtifactRules | None,
    policy: Policy | None,
    mode: str | None,
    agent: str | None,
) -> Integrated | Conflict | Rejected:
    """``integrate_story`` within a series: its refs move when the series writes."""
    repo, run_id, refs = run.repo, run.run_id, run.refs
    story_ref = naming.attempt_ref(run_id, story.id, attempt)
    base = refs.base
    config = await read_baro_config(repo, base)
    rules = rules or config.artifacts
    chosen = resolve_policy(policy, config.surface.policy, mode)
    current = refs.integration
    conflicted = refs.conflicted(story.id, attempt)
    head = conflicted or current or base

    async def judge(*more: str) -> tuple[_Judged, list[str | None]]:
        found, others = await _peel_attempt(
            run.objects, story, attempt, story_ref, refs.attempt(story.id, attempt), story_base,
            *more,
        )  # fmt: skip
        return await _judge(repo, run.objects, story, found, goal, rules, config), others

    done = refs.integrated(story.id)
    if done is not None:
        done_attempt, commit = done
        judged = (await judge())[0] if done_attempt == attempt else None
        return Integrated(
            story.id,
            done_attempt,
            commit,
            changed=await _is_story_commit(repo, commit, story.id),
            dropped=judged.dropped if judged else [],
            story_ref=naming.attempt_ref(run_id, story.id, done_attempt),
            already_integrated=True,
            refused=judged.refused if judged else [],
            outside_surface=judged.outside_surface if judged else [],
            policy=chosen,
            nothing_left=await _nothing_left(repo, judged) if judged else False,
            files=judged.admitted if judged else [],
            run_base=base,
        )

    judged, (head_tree,) = await judge(f"{head}^{{tree}}")
    if any(r.rule == "too_large" for r in judged.refused):
        run.stage(naming.oversized_marker(run_id, story.id, attempt), judged.head)
    if judged.outside_surface and chosen == "strict":
        return Rejected(
            story.id, attempt, judged.outside_surface, judged.refused, judged.dropped, story_ref
        )
    theirs = await _admitted_tree(repo, judged)
    nothing_left = theirs == judged.start_tree
    head_tree = head_tree or await tree_of(repo, head)
    if head == judged.start:
        tree = theirs  # the story started from the integration head: nothing to merge
    else:
        merged = await three_way_merge(repo, judged.start, head_tree, theirs, run.merges)
        if merged.conflicts or conflicted is not None:
            if conflicted is None:
                run.stage(naming.conflicted_marker(run_id, story.id, attempt), head, ZERO_OID)
            return Conflict(story.id, attempt, merged.conflicts, merged.messages, story_ref, head)
        tree = merged.tree

    def result(commit: str, changed: bool) -> Integrated:
        return Integrated(
            story.id, attempt, commit, changed, judged.dropped, story_ref, False,
            judged.refused, judged.outside_surface, chosen, nothing_left, judged.admitted,
            base,
        )  # fmt: skip

    marker = naming.integrated_marker(run_id, story.id, attempt)
    if tree == head_tree:
        run.stage(marker, head, ZERO_OID)
        return result(head, False)
    message = story_commit_message(story, summary, agent)
    commit = await commit_tree(repo, tree, head, message, await load_identity(repo))
    run.stage(naming.integration_ref(run_id), commit, current or ZERO_OID)
    run.stage(marker, commit, ZERO_OID)
    return result(commit, True)


@dataclass(frozen=True)
class _Attempt:
    """An imported attempt's commits and trees, as ``_peel_attempt`` found them."""

    head: str
    start: str  # the commit it started from
    tree: str  # the head's tree
    start_tree: str


async def _peel_attempt(
    objects: ObjectLookup, story: Story, attempt: int, story_ref: str, story_head: str | None,
    story_base: str, *more: str,
) -> tuple[_Attempt, list[str | None]]:  # fmt: skip
    """The attempt's commits and trees, and the object ids ``more`` revisions name, in one
    lookup. Raises MergerError for an attempt not imported or an unknown base."""
    if story_head is None:
        raise MergerError(f"story {story.id} attempt {attempt} was not imported ({story_ref})")
    if story_base.startswith("-") or "\n" in story_base:
        raise MergerError(f"story base {story_base!r} of story {story.id} is unknown here")
    revs = [f"{story_base}^{{commit}}", f"{story_base}^{{tree}}", f"{story_head}^{{tree}}"]
    start, start_tree, tree, *others = await objects.peel([*revs, *more])
    if start is None or start_tree is None:
        raise MergerError(f"story base {story_base} of story {story.id} is unknown here")
    if tree is None:
        raise MergerError(f"story {story.id} attempt {attempt} has no commit at {story_ref}")
    return _Attempt(story_head, start, tree, start_tree), others


async def _judge(
    repo: Path,
    objects: ObjectLookup,
    story: Story,
    found: _Attempt,
    goal: str,
    rules: ArtifactRules,
    config: BaroConfig,
) -> _Judged:
    story_head, start = found.head, found.start
    raw = await changed_entries(repo, start, story_head)
    facts = await _facts(repo, objects, raw, start, story_head)
    refused = guard(
        facts.entries,
        surface=story.write_surface,
        goal=goal,
        tracked_at_base=facts.tracked_at_base,
        links=facts.links,
        limits=config.surface,
    )
    refused_paths = {r.path for r in refused}
    rest = [c for c in raw if c.path not in refused_paths]
    dropped = select_dropped(
        [Change(c.path, c.status) for c in rest], story.write_surface, goal, rules
    )
    dropped_paths = {d.path for d in dropped}
    outside = outside_surface(
        [c.path for c in rest if c.path not in dropped_paths], story.write_surface
    )
    return _Judged(story_head, start, found.tree, found.start_tree, raw, refused, dropped, outside)


async def _admitted_tree(repo: Path, judged: _Judged) -> str:
    """The attempt's tree without what was refused or dropped."""
    left_out = judged.left_out
    if left_out:
        return await revert_paths(repo, judged.tree, left_out)
    return judged.tree


async def _nothing_left(repo: Path, judged: _Judged) -> bool:
    return await _admitted_tree(repo, judged) == judged.start_tree


@dataclass(frozen=True)
class _Facts:
    entries: list[Entry]
    tracked_at_base: int
    links: dict[str, str]


async def _facts(
    repo: Path, objects: ObjectLookup, raw: list[RawChange], start: str, head: str
) -> _Facts:
    """What the guards need to know about a change, read from git in a few processes."""
    blobs = [
        oid
        for c in raw
        for mode, oid in ((c.old_mode, c.old_oid), (c.new_mode, c.new_oid))
        if mode not in (DELETED_MODE, GITLINK_MODE, TREE_MODE)
    ]
    sizes = await objects.sizes(blobs)
    links: dict[str, str] = {}
    if any(c.new_mode == SYMLINK_MODE for c in raw):
        listing = await tree_listing(repo, head)
        tree_links = [(path, oid) for path, mode, oid in listing if mode == SYMLINK_MODE]
        texts = await blob_texts(repo, [oid for _, oid in tree_links])
        links = {path: texts.get(oid, "") for path, oid in tree_links}
    deletions = sum(1 for c in raw if c.new_mode == DELETED_MODE)
    tracked = len(await tree_listing(repo, start)) if deletions > 1 else 0
    entries = [
        Entry(
            path=c.path,
            status=c.status,
            old_mode=c.old_mode,
            new_mode=c.new_mode,
            old_oid=c.old_oid,
            new_oid=c.new_oid,
            old_size=sizes.get(c.old_oid) if c.old_mode != DELETED_MODE else None,
            new_size=sizes.get(c.new_oid) if c.new_mode != DELETED_MODE else None,
            link_target=links.get(c.path) if c.new_mode == SYMLINK_MODE else None,
        )
        for c in raw
    ]
    return _Facts(entries, tracked, links)


async def _is_story_commit(repo: Path, commit: str, story_id: str) -> bool:
    """Did integrating the story make ``commit`` (rather than finding nothing to add)?"""
    trailer = await own_git(
        "log", "-1", "--format=%(trailers:key=Baro-Story,valueonly)", commit, cwd=repo
    )
    return trailer.out == " ".join(story_id.split())


def story_commit_message(story: Story, summary: str | None = None, agent: str | None = None) -> str:
    """Title line, a blank line, the summary (or description), the story and co-author
    trailers."""
    title = " ".join((story.title or "").split())[:TITLE_MAX] or f"Story {story.id}"
    body = (summary if summary is not None else story.description).strip()
    if len(body) > BODY_MAX:
        body = body[:BODY_MAX].rstrip() + "\n[...]"
    trailer = f"Baro-Story: {' '.join(story.id.split())}\n{co_author_trailer(agent)}"
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
        base_commit, head_commit = await peel(repo, [f"{base}^{{commit}}", f"{head}^{{commit}}"])
        if base_commit is None or head_commit is None:
            raise MergerError(f"cannot bundle {base}..{head}: unknown commit")
        if base_commit == head_commit:
            return None
        await update_refs(repo, [f"update {published} {head_commit}"])
        return await _write_bundle(repo, published, head_commit, base_commit, out_path)


async def _write_bundle(repo: Path, published: str, head: str, base: str, out_path: Path) -> Path:
    """A bundle of ``head`` without what ``base`` has, its ref ``published``, written
    atomically."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        await bundles.write_bundle(repo, published, head, base, partial)
        partial.replace(out_path)
    except GitError as exc:
        partial.unlink(missing_ok=True)
        raise MergerError(f"cannot write bundle {out_path}: {exc.stderr}") from None
    return out_path
