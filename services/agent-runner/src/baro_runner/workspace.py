"""A story's workspace: a private repository at the story's base commit, under baro's cache.

Never the user's working tree: the workspace borrows the source's objects from the
source's cache (``baro_shared.objectcache``; filled from a local path, a git URL, or a
bundle from the object store, with only what it lacks), then checks out the base commit
(unbundling the integration bundle into its own objects when the base is an integration
commit the source does not have). Whatever the agent writes stays in the workspace's own
object store. The result goes back as a git bundle of base..head.

Before the agent starts, ``setup`` prepares the clone for a real project, as the
``.baro.toml`` ``[setup]`` of the run's base commit says: untracked files such as ``.env``
are copied in from the user's working tree (read only), then the setup command runs. Neither the copies nor
anything the command creates may reach the story's commit, which is made with
``git add -A``: they are written into the clone's ``.git/info/exclude``, and tracked files
the command changed are put back to the committed version. See docs/merging.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import re
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baro_shared import bundles, objectcache, retention
from baro_shared import schemas as s
from baro_shared.backends import agent_env
from baro_shared.gitutil import BARO_IDENTITY, GitError, GitResult, own_git, tree_listing
from baro_shared.processes import run_in_group
from baro_shared.repoconfig import (
    DEFAULT_MAX_FILE_BYTES,
    RepoConfig,
    RepoConfigError,
    SetupConfig,
    command_text,
    human_size,
    read_repo_config_at,
)
from baro_shared.sandbox import Fence
from baro_shared.surfaces import GIT_PATH_REASON, is_git_like_name, is_git_like_path

STORY_BRANCH = "baro-story"


class WorkspaceError(RuntimeError):
    pass


@dataclass
class Workspace:
    root: Path  # per attempt: repo/ the clone, home/ the agent's config home, logs/ its output
    # given to the setup command and the agent on top of agent_env (the story's ports)
    env: dict[str, str] = field(default_factory=dict)
    # the source cache the clone borrows from, as the runner attached it
    cache: objectcache.SourceCache | None = None

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def logs(self) -> Path:
        """The agent's raw stdout and stderr (``rawlog``), next to the clone, never in it."""
        return self.root / "logs"

    @property
    def git_dir(self) -> Path:
        return self.repo / ".git"

    async def remove(self) -> None:
        """Delete the workspace, off the event loop: a clone's many files take a while to
        delete, and every service of a local run shares the loop. Its path is free at
        once (the directory is first renamed aside), so a workspace prepared there while
        the files are still going is never touched by the deletion."""
        objectcache.release(self.git_dir)
        doomed = self.root.with_name(f".{self.root.name}.removed-{os.getpid()}-{next(_removals)}")
        try:
            self.root.rename(doomed)
        except FileNotFoundError:
            pass  # gone already: its run's directory may be empty now
        except OSError:
            doomed = self.root
        await asyncio.to_thread(shutil.rmtree, doomed, True)
        retention.drop_if_empty(self.root.parent)

    async def retire(self, spares: int) -> None:
        """Delete the workspace but keep its clone's files as a spare for the next story
        of the same source (at most ``spares`` per source, in its cache's
        ``baro/spare-workspaces``), without its ``.git``: the next story then writes only
        the files that differ from its base instead of every file of the tree
        (``claim_spare`` says how a spare is made trustworthy again). Only for a clone
        whose agent ran fenced: nothing it started outlives it to write into a spare."""
        cache = objectcache.borrowed_cache(self.git_dir)
        if spares > 0 and cache is not None:
            tracked = await _tracked_sizes(self.repo)
            if tracked is not None:
                indexed = await _index_the_files(self)
                await asyncio.to_thread(
                    _keep_as_spare, self.repo, cache.meta / SPARES_DIR, spares, tracked, indexed
                )
        await self.remove()


_removals = itertools.count()
SPARES_DIR = "spare-workspaces"
# a spare's index, while the spare is on its way into or out of the pool (beside the
# clone, in the attempt's folder); in the pool it is the spare's ``.git/index``, the one
# thing of a ``.git`` a spare keeps
SPARE_INDEX = "spare.index"


async def _tracked_sizes(repo: Path) -> dict[str, int] | None:
    """Path -> size of every file of the clone's HEAD tree (None when it cannot be read)."""
    listed = await own_git(
        "-c", "core.fsmonitor=false", "ls-tree", "-r", "-z", "--long", "--full-tree", "HEAD",
        cwd=repo, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        return None
    sizes = {}
    for record in listed.stdout.split("\0"):
        meta, _, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == "blob" and fields[3].isdigit():
            sizes[path] = int(fields[3])
    return sizes


async def _index_the_files(ws: Workspace) -> bool:
    """Give the clone a new index of its HEAD, made now by the runner's git from nothing
    the agent left (the clone sealed, its old index deleted): every file's content is
    compared with HEAD's, and only a file whose bytes and mode are HEAD's gets its stat
    data recorded. The next story trusts an entry of it only while the file's stat data
    (inode, ctime, mtime, size) is still exactly that: the content comparison is done
    here, off the next story's critical path. False when there is no such index."""
    try:
        seal(ws)
        (ws.git_dir / "index").unlink(missing_ok=True)
    except (WorkspaceError, OSError):
        return False
    made = await own_git("reset", "--quiet", cwd=ws.repo, check=False)
    return made.returncode == 0


def _keep_as_spare(
    repo: Path, pool: Path, spares: int, tracked: dict[str, int], indexed: bool = False
) -> None:
    """Keep only what the clone's HEAD tracks, at its committed size: a spare never holds
    more than one tree of the source (whatever the agent left untracked, ignored, or too
    large to commit goes now, not when the spare is taken); with ``indexed``, the clone's
    index too (``_index_the_files``), as the spare's only ``.git``."""
    try:
        if not stat.S_ISDIR(os.lstat(repo).st_mode):
            return
        git_dir = repo / ".git"
        index = repo.parent / SPARE_INDEX
        if stat.S_ISDIR(os.lstat(git_dir).st_mode):
            if indexed:
                os.replace(git_dir / "index", index)
            shutil.rmtree(git_dir)
        else:
            git_dir.unlink()
        _scrub(repo, tracked)  # and again when claimed
        if indexed:
            git_dir.mkdir()
            os.replace(index, git_dir / "index")
        pool.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # not a clone worth keeping: it goes with the workspace
    for slot in range(spares):
        try:
            repo.rename(pool / f"slot-{slot}")  # fails on a slot already holding a spare
            return
        except OSError:
            continue


def claim_spare(cache: objectcache.SourceCache, repo: Path) -> bool:
    """Move a spare clone of ``cache``'s source to ``repo`` (which must not exist) and
    scrub it; False when there is none or it cannot be made trustworthy (then ``repo``
    does not exist). A spare is what an earlier agent left, so nothing in it is trusted:
    anything but plain directories and plain files the runner owns with one link goes
    (symlinks, hard links, fifos, devices, set-id files, nested ``.git``), directories
    are made writable, and the caller then compares every file with the base tree
    (``_checkout_over_spare``). The one index it goes by is the runner's own, made when
    the clone was retired after the agent had ended (``_index_the_files``; put beside
    ``repo`` as ``SPARE_INDEX``): nothing the agent's index said counts, and a file whose
    stat data changed since is compared by its content."""
    pool = cache.meta / SPARES_DIR
    try:
        candidates = sorted(pool.iterdir())
    except OSError:
        return False
    for spare in candidates:
        try:
            spare.rename(repo)  # atomic: of two runners claiming one spare, one gets it
        except OSError:
            continue
        try:
            _take_index(repo)
            _scrub(repo)
            return True
        except OSError:
            refused = repo.with_name(f".{repo.name}.refused-{os.getpid()}-{next(_removals)}")
            repo.rename(refused)
            with contextlib.suppress(OSError):
                _discard(refused)
            return False
    return False


def _take_index(repo: Path) -> None:
    """Move a claimed spare's index (its ``.git/index``) to ``SPARE_INDEX`` beside it, when
    it is a plain file the runner owns, written since the machine started; none is left
    there otherwise. Neither the index nor the files were synced to the disk: after a
    crash a file may have its recorded size and times but not its bytes, so the spare's
    files are then compared by content."""
    index = repo.parent / SPARE_INDEX
    index.unlink(missing_ok=True)
    try:
        if not stat.S_ISDIR(os.lstat(repo / ".git").st_mode):
            return
        st = os.lstat(repo / ".git" / "index")
    except FileNotFoundError:
        return
    booted = _boot_time()
    if (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and st.st_uid == os.getuid()
        and booted is not None
        and st.st_mtime > booted
    ):
        os.rename(repo / ".git" / "index", index)


def _boot_time() -> float | None:
    """When the machine started (seconds since the epoch), or None where that is unknown."""
    try:
        with open("/proc/stat", "rb") as lines:
            for line in lines:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _scrub(repo: Path, tracked: dict[str, int] | None = None) -> None:
    """Leave in ``repo`` only plain directories and plain single-link files the runner
    owns; with ``tracked`` (path -> size), only those files at those sizes and the
    directories holding them."""
    me = os.getuid()
    folders = {str(Path(p).parent) for p in tracked} if tracked is not None else set()
    folders |= {str(parent) for folder in folders for parent in Path(folder).parents}

    def plain_dir(path: str, st: os.stat_result) -> bool:
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != me:
            return False
        if st.st_mode & 0o700 != 0o700:
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
        return True

    def fail(exc: OSError) -> None:
        raise exc

    if not plain_dir(str(repo), os.lstat(repo)):
        raise OSError(f"{repo} is not a plain directory")
    for dirpath, dirnames, filenames in os.walk(repo, onerror=fail):
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            unwanted = tracked is not None and os.path.relpath(path, repo) not in folders
            if name == ".git" or unwanted or not plain_dir(path, st):
                dirnames.remove(name)
                _discard(Path(path), st)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_nlink != 1
                or st.st_uid != me
                or st.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
                or (tracked is not None and tracked.get(os.path.relpath(path, repo)) != st.st_size)
            ):
                os.unlink(path)


def _discard(path: Path, st: os.stat_result | None = None) -> None:
    """Remove ``path`` without following it: a directory with everything in it (made
    writable first where the agent took that away), anything else unlinked."""
    if st is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return

    def writable_and_retry(func: Callable[[str], None], failed: str, _exc: object) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, 0o700)
        func(failed)

    shutil.rmtree(path, onerror=writable_and_retry)


def workspace_path(base: Path, run_id: str, story_id: str, attempt: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in story_id)
    return base / run_id / f"{safe}-{attempt}"


async def prepare(
    root: Path,
    source: s.RepoSource,
    base_commit: str,
    *,
    sources: Path,
    run_base: str | None = None,
    base_bundle: Path | None = None,
    base_bundle_ready: Awaitable[None] | None = None,
    store: objectcache.ObjectFiles | None = None,
    downloads: Path | None = None,
    reuse: bool = False,
) -> Workspace:
    """Make ``root/repo``: a repository borrowing the source's objects from its cache
    under ``sources``, with ``base_commit`` checked out on the story branch. With
    ``reuse``, the files of a spare clone of the same source (``Workspace.retire``) are
    taken when there is one: only what differs from the base is written.

    The source is read only when its cache lacks the commit the story needs: the run's
    base ``run_base`` when ``base_bundle`` (the integration head past it) comes along,
    else ``base_commit``. A bundle source is an object of ``store``, downloaded into
    ``downloads`` (with the earlier snapshots it builds on that the cache lacks) only then.
    ``base_bundle_ready``: the download of ``base_bundle``, still under way.

    Whatever works in the workspace must be able to read ``objectcache.borrowed_objects``
    of its ``.git`` (the cache's object directory), and need not write there.
    """
    ws = Workspace(root)
    if root.exists():
        await ws.remove()
    cache = objectcache.cache_of(sources, source)
    reused, indexed = await asyncio.to_thread(_lay_out, ws, cache, reuse)
    # what a spare holds beyond the index the runner made for it goes while the objects
    # are found (it needs none of them)
    cleaned = asyncio.create_task(_clean(ws.repo)) if indexed else None
    if base_bundle is None:
        wanted, need = base_commit, base_commit
    elif run_base is not None:
        wanted, need = run_base, run_base
    else:  # a command without run_base: whatever the source's own base is
        wanted, need = source.commit or source.ref or "HEAD", source.commit

    async def locate() -> str:
        if source.kind != "bundle":
            return source.location
        if store is None or downloads is None:
            raise WorkspaceError("the run's source bundle cannot be read: no object store")
        try:
            return await objectcache.locate_bundle(cache, source.location, store, downloads)
        except objectcache.CacheError as exc:
            raise WorkspaceError(str(exc)) from None

    try:
        obtained = await objectcache.obtain(
            cache,
            objectcache.describe(source),
            locate,
            wanted,
            commit=need,
            seed=Path(source.location).expanduser() if source.kind == "path" else None,
            borrower=ws.git_dir,
        )
        if obtained.fetched.commit is None:
            raise WorkspaceError(
                f"base commit {(need or wanted)[:12]} is not in the source: "
                f"{objectcache.git_line(obtained.fetched.stderr)}"
            )
        objectcache.attach(cache, ws.git_dir)
        ws.cache = cache
        if base_bundle is not None:
            if base_bundle_ready is not None:
                await base_bundle_ready
            await _take_objects(ws.repo, base_bundle)
        if reused:
            checkout = await _checkout_over_spare(ws.repo, base_commit, cleaned)
        else:
            checkout = await own_git(
                "checkout", "--quiet", "-B", STORY_BRANCH, base_commit, cwd=ws.repo, check=False
            )
        if checkout.returncode != 0:
            where = "the integration bundle" if base_bundle is not None else "the source"
            raise WorkspaceError(f"base commit {base_commit[:12]} is not in {where}")
    except GitError as exc:
        raise WorkspaceError(f"could not prepare the workspace: {exc}") from exc
    finally:
        await _settled(cleaned)
    return ws


async def _take_objects(repo: Path, bundle: Path) -> None:
    """The objects of the merger's bundle of the integration head, no refs (the story
    branch made next holds the base). Its pack is indexed, not fetched (a fetch's
    connectivity walk over what the merger wrote costs more than all the rest) nor
    unbundled (``baro_shared.bundles``); a prerequisite the cache lacks fails the base's
    checkout. Not synced to the disk (git syncs a pack it indexes): a clone lost in a
    crash is made again by the story's next attempt, never reused."""
    try:
        header = bundles.read_bundle_header(bundle)
    except bundles.BundleUnreadable as exc:
        raise WorkspaceError(f"the integration bundle: {exc}") from None
    with bundle.open("rb") as pack:
        pack.seek(header.pack_offset)
        indexed = await own_git(
            "-c", "core.fsync=none", "index-pack", "--stdin", "--fix-thin",
            cwd=repo, input=pack, check=False,
        )  # fmt: skip
    if indexed.returncode != 0:
        raise WorkspaceError(f"could not read the integration bundle: {indexed.stderr.strip()}")


def _lay_out(ws: Workspace, cache: objectcache.SourceCache, reuse: bool) -> tuple[bool, bool]:
    """The attempt's folders and its clone's ``.git``, off the event loop (under load one
    directory made can wait for the disk's journal): the clone's files are a spare's when
    ``reuse`` and there is one, with the spare's index. Whether it was, and whether that
    index came with it."""
    for d in (ws.home, ws.scratch, ws.logs):
        d.mkdir(parents=True, exist_ok=True)
    reused = reuse and claim_spare(cache, ws.repo)
    if not reused:
        ws.repo.mkdir()
    init_clone(ws.git_dir)
    return reused, reused and _adopt_index(ws)


def _adopt_index(ws: Workspace) -> bool:
    """Make a claimed spare's index (``SPARE_INDEX``) the new clone's."""
    try:
        os.rename(ws.root / SPARE_INDEX, ws.git_dir / "index")
    except FileNotFoundError:
        return False
    return True


async def _checkout_over_spare(
    repo: Path, base_commit: str, cleaned: asyncio.Task[GitResult] | None
) -> GitResult:
    """Check ``base_commit`` out on the story branch over a scrubbed spare's files, writing
    only the files whose bytes or mode are not the base's; nothing the base does not track
    is left, ignored files and nested repositories included.

    ``cleaned``: the clone has the spare's index (``_index_the_files``) and ``_clean`` has
    removed everything that index does not track: the forced checkout keeps a file only
    where its entry has the base's blob and the file's stat data is the entry's, and
    deletes the files of the index that the base does not have. Without it (or when git
    cannot read that index) the index is made from the base tree with no stat data, the
    reset compares every file's content with the base, and clean runs after."""
    if cleaned is not None:
        if (await cleaned).returncode == 0:
            checkout = await own_git(
                "checkout", "--quiet", "--force", "-B", STORY_BRANCH, base_commit,
                cwd=repo, check=False,
            )  # fmt: skip
            if checkout.returncode == 0:
                return checkout
        (repo / ".git" / "index").unlink(missing_ok=True)
    # the story branch (HEAD's, unborn) at the base, its tree read and refreshed
    reset = await own_git("reset", "--quiet", base_commit, cwd=repo, check=False)
    if reset.returncode != 0:
        return reset
    checkout = await own_git("checkout", "--quiet", "--force", cwd=repo, check=False)
    if checkout.returncode != 0:
        return checkout
    return await _clean(repo)


async def _clean(repo: Path) -> GitResult:
    """Remove whatever the clone's index does not track, ignored files and nested
    repositories included."""
    return await own_git("clean", "-ffdxq", cwd=repo, check=False)


async def resume(ws: Workspace, bundle: Path, head: str) -> None:
    """Move the story branch to ``head``, an earlier attempt's result (fetched from its
    bundle, whose base the workspace has): a repair turn goes on from there."""
    try:
        await own_git(
            "fetch", "--quiet", "--no-tags", str(bundle), "+refs/*:refs/baro-resume/*",
            cwd=ws.repo,
        )  # fmt: skip
        moved = await own_git(
            "checkout", "--quiet", "-B", STORY_BRANCH, head, cwd=ws.repo, check=False
        )
    except GitError as exc:
        raise WorkspaceError(f"could not take up the earlier attempt: {exc}") from exc
    if moved.returncode != 0:
        raise WorkspaceError(f"the earlier attempt's result {head[:12]} is not in its bundle")


# what `git init` writes: the runner's git commands read no setting the agent chose
CLONE_CONFIG = (
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
    "\tbare = false\n\tlogallrefupdates = true\n"
)


def init_clone(git_dir: Path) -> None:
    """Make ``git_dir`` what ``git init`` makes of it on a POSIX file system, with ``HEAD``
    on the story branch (unborn) and none of git's templates: no sample hooks, no
    ``description``, no ``info/exclude`` (``_exclude`` writes one when the setup needs it).
    Written here rather than by a git process, once per story; git reads it as its own
    (tests/workspace/test_clone_init.py runs ``git fsck`` and every command baro uses)."""
    for folder in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        (git_dir / folder).mkdir(parents=True)
    (git_dir / "config").write_text(CLONE_CONFIG)
    (git_dir / "HEAD").write_text(f"ref: refs/heads/{STORY_BRANCH}\n")


class CloneTampered(WorkspaceError):
    """The agent made its clone's ``.git`` something the runner must not run git in."""


def seal(ws: Workspace) -> None:
    """Make the clone's ``.git`` the runner's again before the runner runs git in it after
    something untrusted ran there (the agent, the setup command, the checks), outside any
    fence: the config is put back to what ``git init`` wrote (no fsmonitor, filter,
    hooksPath, gpg or diff command the agent set), hooks, ``commondir`` and
    ``info/attributes`` go, the alternates name the source cache again. A ``.git`` that is
    not a directory (a file naming another repository) or holds a symbolic link anywhere
    (a ref directory or the objects leading into another repository) is refused:
    CloneTampered, and the runner runs no git there at all."""
    git_dir = ws.git_dir
    try:
        st = os.lstat(git_dir)
    except FileNotFoundError:
        raise CloneTampered("the agent removed its clone's .git") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CloneTampered(
            "the agent replaced its clone's .git with something else than a directory "
            "(a .git file names another repository): nothing of it is collected"
        )
    linked = _symbolic_link_under(git_dir)
    if linked is not None:
        raise CloneTampered(
            f"the agent made {os.path.relpath(linked, ws.repo)} a symbolic link: "
            "nothing of its clone is collected"
        )
    for name in ("commondir", "info/attributes"):
        with contextlib.suppress(FileNotFoundError):
            (git_dir / name).unlink()
    with contextlib.suppress(FileNotFoundError):
        _discard(git_dir / "hooks")
    # written again only when they are not what they must be: writing a file and renaming
    # it is most of a seal's time on an ext4 disk
    if not _holds(git_dir / "config", CLONE_CONFIG):
        config = git_dir / f"config.baro-{os.getpid()}"
        config.write_text(CLONE_CONFIG)
        os.replace(config, git_dir / "config")
    if ws.cache is not None:
        alternates = git_dir / "objects" / "info" / "alternates"
        if not _holds(alternates, f"{ws.cache.objects.resolve()}\n"):
            objectcache.attach(ws.cache, git_dir)


def _symbolic_link_under(top: Path) -> str | None:
    """The first symbolic link found under ``top``, without following any (the kind of
    each entry is what the directory listing says, no stat per entry)."""
    pending = [os.fspath(top)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    return entry.path
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return None


def _holds(path: Path, text: str) -> bool:
    """Is ``path`` a plain single-link file of the runner's holding exactly ``text``?"""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.getuid():
            return False
        return path.read_bytes() == text.encode()
    except OSError:
        return False


async def switch(ws: Workspace, commit: str) -> None:
    """Check out ``commit`` (detached) or the story branch, whatever the tree holds."""
    seal(ws)
    target = ["--detach", commit] if commit != STORY_BRANCH else [STORY_BRANCH]
    await own_git("checkout", "--quiet", "--force", *target, cwd=ws.repo)


@dataclass(frozen=True)
class Change:
    head: str
    changed_files: list[str]
    # left out of the commit and of the bundle: files above the size limit, and the files
    # git refuses to record (``.GIT/hooks/x``, ``git~1``), as the run reports them
    left_out: list[s.Refusal] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)  # those git refused, every one


async def commit_result(
    ws: Workspace,
    base_commit: str,
    title: str,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    bundle: Path | None = None,
) -> Change:
    """Commit whatever the agent left uncommitted; return the head and the files it changed,
    and with ``bundle``, write the result's bundle there (``write_bundle``) when it changed
    any.

    A file above ``max_file_bytes`` that was not that large at the base is left out: not
    staged (so not even hashed) when the agent left it uncommitted, and taken out of the
    story's history when the agent committed it (the story then becomes one commit of its
    final tree without it), so the bundle never carries it. Files git refuses to record
    for their name stay out too, without costing the story the rest of its change.
    """
    seal(ws)
    repo = ws.repo
    large = await _large_uncommitted(repo, base_commit, max_file_bytes)
    unrecorded = await _stage_everything(repo, exclude=large)
    made = await own_git(
        "commit", "--quiet", "--no-verify", "-m", title[:200] or "story",
        cwd=repo, env=BARO_IDENTITY, check=False,
    )  # fmt: skip
    if made.returncode != 0:  # fine when nothing was staged (the agent committed)
        staged = await own_git("diff", "--cached", "--quiet", cwd=repo, check=False)
        if staged.returncode != 0:
            raise GitError(("commit",), made.returncode, made.stderr)
    head, branch = _story_head(ws.git_dir) or await _head_and_branch(repo)
    changed: list[str] = []
    committed: dict[str, int] = {}
    early: asyncio.Task[None] | None = None
    if head != base_commit:
        if bundle is not None and branch == head:
            # the bundle is written while the files are listed and the blobs checked for
            # size, and written again in the rare case a blob is then taken out
            early = asyncio.create_task(write_bundle(ws, base_commit, bundle, head))
        try:
            committed, changed = await asyncio.gather(
                _large_committed(repo, base_commit, head, max_file_bytes),
                _changed_files(repo, base_commit, head),
            )
        except BaseException:
            await _settled(early)
            raise
    if committed:
        await _settled(early)
        early = None
        head = await _without(repo, base_commit, head, set(committed), title)
        changed = await _changed_files(repo, base_commit, head)
    if branch != head:  # the agent may have switched
        await own_git("update-ref", f"refs/heads/{STORY_BRANCH}", head, cwd=repo)
    if bundle is None or not changed:
        await _settled(early)
    elif early is not None:
        await early
    else:
        await write_bundle(ws, base_commit, bundle, head)
    left_out = [
        s.Refusal(path=path, rule="too_large", reason=_too_large(size, max_file_bytes))
        for path, size in sorted({**large, **committed}.items())
    ] + unrecorded_refusals(unrecorded)
    return Change(head, changed, left_out, unrecorded)


async def _settled(task: asyncio.Task[Any] | None) -> None:
    """Wait for a step started early whose result is not wanted (a bundle written early
    that is not the result's, a spare's clean), whatever became of it."""
    if task is not None:
        with contextlib.suppress(Exception):
            await task


async def _changed_files(repo: Path, base_commit: str, head: str) -> list[str]:
    if head == base_commit:
        return []
    diff = await own_git("diff", "--name-only", "--no-renames", base_commit, head, cwd=repo)
    return [line for line in diff.stdout.splitlines() if line]


def _too_large(size: int, limit: int) -> str:
    return (
        f"{human_size(size)}, above the {human_size(limit)} limit for one file: left out of "
        "the story's result before it was bundled"
    )


_LOOSE_REF = re.compile(rb"[0-9a-f]{40}\n")


def _story_head(git_dir: Path) -> tuple[str, str] | None:
    """HEAD's commit and the story branch's, read without git where git leaves them after
    a commit on the branch: ``HEAD`` naming the branch, the branch a loose ref (which git
    reads before ``packed-refs``). None for anything else (the agent switched, detached or
    packed its refs): then git reads them. Only on a sealed clone (no symbolic link in
    its ``.git``, no extension of its repository format)."""
    try:
        if (git_dir / "HEAD").read_bytes() != f"ref: refs/heads/{STORY_BRANCH}\n".encode():
            return None
        ref = (git_dir / "refs" / "heads" / STORY_BRANCH).read_bytes()
    except OSError:
        return None
    if not _LOOSE_REF.fullmatch(ref):
        return None
    head = ref[:40].decode()
    return head, head


async def _head_and_branch(repo: Path) -> tuple[str, str | None]:
    """HEAD's commit and the story branch's (None when the agent removed the branch)."""
    shown = await own_git("rev-parse", "HEAD", f"refs/heads/{STORY_BRANCH}", cwd=repo, check=False)
    both = shown.stdout.split()
    if shown.returncode == 0 and len(both) == 2:
        return both[0], both[1]
    return (await own_git("rev-parse", "HEAD", cwd=repo)).out, None


async def _large_uncommitted(repo: Path, base_commit: str, limit: int) -> dict[str, int]:
    """Path -> size of the files in the working tree, changed or new, above ``limit`` and
    larger than at ``base_commit`` (a file that large already is not the agent's doing)."""
    listed = await own_git(
        "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", cwd=repo
    )
    sizes = {}
    for record in listed.stdout.split("\0"):
        path = record[3:]
        if len(record) < 4 or record[1] == "D" or record[0] == "D":
            continue
        try:
            info = (repo / path).lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            sizes[path] = info.st_size
    return await _larger_than_at_base(repo, base_commit, sizes)


async def _large_committed(repo: Path, base_commit: str, head: str, limit: int) -> dict[str, int]:
    """Path -> size of the blobs the story's commits add above ``limit`` (in any commit,
    not only the last: the bundle would carry each of them)."""
    if head == base_commit:
        return {}
    # one walk that names no path but says whether any blob is that large (`~<id>`, left
    # out by the filter): mostly none is, and the walk with paths is not needed
    over = await own_git(
        "rev-list", "--objects", f"--filter=blob:limit={limit + 1}", "--filter-print-omitted",
        head, f"^{base_commit}",
        cwd=repo,
    )  # fmt: skip
    if not any(line.startswith("~") for line in over.stdout.splitlines()):
        return {}
    objects = await own_git("rev-list", "--objects", head, f"^{base_commit}", cwd=repo)
    described = await own_git(
        "cat-file",
        "--batch-check=%(objecttype) %(objectsize) %(rest)",
        cwd=repo,
        input=objects.stdout.encode(),
    )
    sizes: dict[str, int] = {}
    for line in described.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        size, _, path = rest.partition(" ")
        if kind == "blob" and size.isdigit() and int(size) > limit and path:
            sizes[path] = max(int(size), sizes.get(path, 0))
    return await _larger_than_at_base(repo, base_commit, sizes)


async def _larger_than_at_base(
    repo: Path, base_commit: str, sizes: dict[str, int]
) -> dict[str, int]:
    if not sizes:
        return {}
    listed = await own_git(
        "--literal-pathspecs", "ls-tree", "-z", "--long", "--full-tree", base_commit, "--",
        *sizes,
        cwd=repo,
    )  # fmt: skip
    at_base = {}
    for record in listed.stdout.split("\0"):
        meta, _, path = record.partition("\t")
        size = meta.split()[-1] if meta else ""
        if size.isdigit():
            at_base[path] = int(size)
    return {path: size for path, size in sizes.items() if at_base.get(path, -1) < size}


async def _without(repo: Path, base_commit: str, head: str, paths: set[str], title: str) -> str:
    """One commit on ``base_commit`` with ``head``'s tree, but ``paths`` as at the base."""
    at_base = {path: (mode, oid) for path, mode, oid in await tree_listing(repo, base_commit)}
    entries = []
    for path, mode, oid in await tree_listing(repo, head):
        if path in paths:
            if path not in at_base:
                continue
            mode, oid = at_base[path]
        entries.append(f"{mode} {oid}\t{path}\0")
    index = repo.parent / "left-out.index"
    try:
        env = {"GIT_INDEX_FILE": str(index)}
        await own_git("read-tree", "--empty", cwd=repo, env=env)
        await own_git("update-index", "-z", "--index-info", cwd=repo, env=env,
                  input="".join(entries).encode())  # fmt: skip
        tree = (await own_git("write-tree", cwd=repo, env=env)).out
    finally:
        index.unlink(missing_ok=True)
    message = f"{title[:200] or 'story'}\n\nbaro left out files above the size limit: " + (
        ", ".join(sorted(paths))
    )
    commit = await own_git(
        "commit-tree", tree, "-p", base_commit, "-m", message, cwd=repo, env=BARO_IDENTITY
    )
    return commit.out


async def _stage_everything(repo: Path, *, exclude: Iterable[str] = ()) -> list[str]:
    """``git add -A`` but ``exclude``, and except the files git refuses to record, which
    are returned.

    git refuses a path with a component it takes for ``.git`` (``.GIT/hooks/x``,
    ``sub/.Git/config``, ``git~1``: any case, NTFS forms too) and, with a plain ``add
    -A``, then adds nothing at all. An agent writing one such file must not cost the story
    the rest of its change: everything else is staged, and those files stay out of the
    commit (so out of every branch). Any other failure to stage still fails.
    """
    excluded = set(exclude)
    added = await own_git(
        "add", "-A", "--ignore-errors", "--", ".",
        *(f":(exclude,literal){p}" for p in sorted(excluded)),
        cwd=repo, check=False,
    )  # fmt: skip
    if added.returncode == 0:
        return []
    left = await own_git("ls-files", "-z", "--others", "--exclude-standard", cwd=repo)
    unrecorded = sorted(p for p in left.stdout.split("\0") if p and p not in excluded)
    unexplained = [
        line
        for line in added.stderr.splitlines()
        if line.startswith(("error:", "fatal:"))
        and not any(f"'{p}'" in line for p in unrecorded if _refused_by_git(p, added.stderr))
    ]
    if unexplained or not unrecorded:
        raise GitError(("add", "-A"), added.returncode, added.stderr)
    return unrecorded


def _refused_by_git(path: str, stderr: str) -> bool:
    return is_git_like_path(path) or f"invalid path '{path}'" in stderr


MAX_UNRECORDED_SHOWN = 20


def unrecorded_refusals(paths: list[str]) -> list[s.Refusal]:
    """The files git refused to record, as the run reports them: one line per ``.git``-like
    directory (its only file, or the directory with a count), at most
    ``MAX_UNRECORDED_SHOWN`` lines (an agent may write thousands)."""
    files: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")
        cut = next((i for i, part in enumerate(parts) if is_git_like_name(part)), len(parts) - 1)
        top = "/".join(parts[: cut + 1])
        files.setdefault(top if cut == len(parts) - 1 else top + "/", []).append(path)
    refusals = []
    for top, under in sorted(files.items()):
        shown, what = (under[0], "it") if len(under) == 1 else (top, f"its {len(under)} files")
        reason = f"{GIT_PATH_REASON}: git refuses to record {what}, so it stays out of the commit"
        refusals.append(s.Refusal(path=shown, rule="git_path", reason=reason))
    if len(refusals) > MAX_UNRECORDED_SHOWN:
        rest = len(refusals) - MAX_UNRECORDED_SHOWN + 1
        last = refusals[MAX_UNRECORDED_SHOWN - 1]
        refusals[MAX_UNRECORDED_SHOWN - 1] = s.Refusal(
            path=last.path,
            rule="git_path",
            reason=f"{last.reason}; {rest - 1} more .git-like paths like it not listed",
        )
        refusals = refusals[:MAX_UNRECORDED_SHOWN]
    return refusals


DIFF_CHARS = 24_000  # of a story's change shown to the critic


async def change_diff(ws: Workspace, base_commit: str, limit: int = DIFF_CHARS) -> str:
    """The story's committed change as a unified diff, cut at ``limit`` characters (the
    critic reads it; binary files show as such)."""
    seal(ws)
    shown = await own_git(
        "diff", "--no-color", "--no-ext-diff", "--no-renames", base_commit, STORY_BRANCH,
        cwd=ws.repo, check=False,
    )  # fmt: skip
    text = shown.stdout
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... the diff is cut here: {len(text) - limit} more characters ...]\n"


async def write_bundle(ws: Workspace, base_commit: str, out: Path, head: str | None = None) -> None:
    """The story branch past ``base_commit`` as a bundle (``bundles.write_bundle``), at
    ``head`` when the caller has read it; called by ``commit_result``, or right after it,
    which sealed the clone (nothing untrusted ran since)."""
    if head is None:
        head = (_story_head(ws.git_dir) or await _head_and_branch(ws.repo))[1]
    if head is None:
        raise WorkspaceError("the story branch is gone: there is no result to bundle")
    await bundles.write_bundle(ws.repo, f"refs/heads/{STORY_BRANCH}", head, base_commit, out)


# --------------------------------------------------------------------------- setup

SETUP_EXCERPT_CHARS = 4000
ERROR_EXCERPT_CHARS = 1500
_EXCLUDE_HEADER = "# baro: workspace setup (copied files and setup outputs stay out of the commit)"


class SetupFailed(WorkspaceError):
    """The repository's [setup] failed: the story fails with reason ``setup_failed``."""


@dataclass
class SetupReport:
    """What ``setup`` did, for the story's events and the logs."""

    command: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    output: str = ""  # the tail of the command's stdout and stderr
    seconds: float = 0.0
    copied: list[str] = field(default_factory=list)
    not_copied: list[str] = field(default_factory=list)  # "path: why"
    excluded: list[str] = field(default_factory=list)  # lines added to .git/info/exclude
    restored: list[str] = field(default_factory=list)  # tracked files the command changed

    @property
    def ok(self) -> bool:
        return self.command is None or self.exit_code == 0

    def summary(self) -> str:
        parts = []
        if self.copied:
            parts.append(f"copied {len(self.copied)} file(s) ({_listing(self.copied)})")
        if self.not_copied:
            parts.append(f"not copied: {_listing(self.not_copied)}")
        if self.command is not None:
            result = (
                f"timed out after {self.seconds:.0f}s"
                if self.timed_out
                else f"exit code {self.exit_code} in {self.seconds:.1f}s"
            )
            parts.append(f"ran `{self.command}`: {result}")
        if self.restored:
            parts.append(f"put back tracked files it changed: {_listing(self.restored)}")
        return "; ".join(parts) or "nothing to do"


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


async def setup(
    ws: Workspace,
    source: s.RepoSource,
    base_commit: str,
    *,
    config_commit: str | None = None,
    config: RepoConfig | None = None,
    fence: Fence | None = None,
) -> SetupReport | None:
    """Prepare the workspace as the repository's .baro.toml ``[setup]`` says; the command
    runs inside ``fence``, as the agent will.

    The file is read from ``config_commit``, the run's base (default ``base_commit``): a
    dependency's story may have written a ``.baro.toml`` into the story's base, and what it
    wrote must not choose the commands run here or the files copied in. ``config``: that
    file, read already. None when there is no ``[setup]``. Raises SetupFailed when the file is invalid, the
    command fails or times out, or the command moved the workspace off ``base_commit``.
    """
    if config is None:
        try:
            config = await read_repo_config_at(ws.repo, config_commit or base_commit)
        except RepoConfigError as exc:
            raise SetupFailed(str(exc)) from None
    if config.setup is None:
        return None
    report = SetupReport()
    tracked = await _tracked_files(ws.repo)
    if config.setup.copy:
        await _copy_from_source(ws.repo, source, config.setup.copy, tracked, report)
    await _exclude(ws.repo, report.copied)
    if config.setup.command is not None:
        await _run_setup_command(ws, config.setup, report, source, fence)
        seal(ws)
        await _contain_outputs(ws.repo, base_commit, report)
        if not report.ok:
            raise SetupFailed(_failure_message(report))
    return report


def _failure_message(report: SetupReport) -> str:
    what = (
        f"timed out after {report.seconds:.0f}s"
        if report.timed_out
        else f"failed with exit code {report.exit_code}"
    )
    tail = report.output.strip()[-ERROR_EXCERPT_CHARS:]
    return f"setup command `{report.command}` {what}" + (f":\n{tail}" if tail else " (no output)")


# ---- copying untracked files from the user's working tree


async def _tracked_files(repo: Path) -> set[str]:
    listed = await own_git("ls-files", "-z", cwd=repo)
    return {name for name in listed.stdout.split("\0") if name}


async def _copy_from_source(
    repo: Path,
    source: s.RepoSource,
    entries: tuple[str, ...],
    tracked: set[str],
    report: SetupReport,
) -> None:
    if source.kind != "path":
        report.not_copied.extend(
            f"{entry}: the run's source is not a local path, so there is no working tree to copy from"
            for entry in entries
        )
        return
    root = Path(source.location).expanduser()
    copied, skipped = await asyncio.to_thread(_copy_files, root, repo, entries, tracked)
    report.copied.extend(copied)
    report.not_copied.extend(skipped)


def _copy_files(
    root: Path, repo: Path, entries: tuple[str, ...], tracked: set[str]
) -> tuple[list[str], list[str]]:
    """Copy the files ``entries`` name from ``root`` (read only) into ``repo``."""
    real_root = root.resolve()
    copied: list[str] = []
    skipped: list[str] = []
    for entry in entries:
        names = _expand(real_root, entry)
        if not names:
            skipped.append(f"{entry}: not found in {root}")
            continue
        for name in names:
            why = _copy_one(real_root, repo, name, tracked)
            if why is None:
                copied.append(name)
            else:
                skipped.append(f"{name}: {why}")
    return sorted(set(copied)), skipped


def _expand(root: Path, entry: str) -> list[str]:
    """Repo-relative files an entry names: a file, every file under a directory, or the
    files a glob matches (directories it matches count with their files)."""
    if any(c in entry for c in "*?["):
        matched = glob.glob(entry, root_dir=root, recursive=True, include_hidden=True)
    else:
        matched = [entry] if (root / entry).exists() or (root / entry).is_symlink() else []
    files: list[str] = []
    for name in sorted(matched):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            for below in sorted(path.rglob("*")):
                if below.is_file() or below.is_symlink():
                    files.append(below.relative_to(root).as_posix())
        else:
            files.append(Path(name).as_posix())
    return [f for f in dict.fromkeys(files) if ".git" not in f.split("/")]


def _copy_one(root: Path, repo: Path, name: str, tracked: set[str]) -> str | None:
    """Copy one file; the reason it was not copied, or None."""
    if name in tracked:
        return "tracked in the repository (the workspace has the committed version)"
    try:
        real = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return "a broken link"
    if not real.is_relative_to(root):
        return "a link to outside the repository"
    if not real.is_file():
        return "not a regular file"
    target = repo / name
    if target.is_dir():
        return "a directory of that name is in the repository"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, target)
        shutil.copymode(real, target)
    except OSError as exc:
        return f"cannot copy: {exc.strerror or exc}"
    return None


# ---- keeping copies and setup outputs out of the story's commit


async def _exclude(repo: Path, paths: list[str]) -> None:
    """Add ``paths`` (repo-relative; a trailing ``/`` for directories) to the clone's
    .git/info/exclude as exact, anchored patterns."""
    lines = [_anchored(p) for p in paths if "\n" not in p and "\r" not in p]
    if not lines:
        return
    located = await own_git("rev-parse", "--git-path", "info/exclude", cwd=repo)
    exclude = repo / located.out
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.exists() else ""
    header = "" if _EXCLUDE_HEADER in existing else f"{_EXCLUDE_HEADER}\n"
    gap = "" if not existing or existing.endswith("\n") else "\n"
    with exclude.open("a") as out:
        out.write(gap + header + "".join(line + "\n" for line in lines))


_GITIGNORE_SPECIAL = re.compile(r"([\\*?\[\]!# ])")


def _anchored(path: str) -> str:
    """A .gitignore line that matches exactly ``path`` from the repository root."""
    directory = path.endswith("/")
    body = _GITIGNORE_SPECIAL.sub(r"\\\1", path.rstrip("/"))
    return f"/{body}/" if directory else f"/{body}"


async def _contain_outputs(repo: Path, base_commit: str, report: SetupReport) -> None:
    """After the command: exclude what it created, put back tracked files it changed."""
    head = await own_git("rev-parse", "HEAD", cwd=repo)
    if head.out != base_commit:
        raise SetupFailed(
            f"setup command `{report.command}` moved the workspace from {base_commit[:12]} "
            f"to {head.out[:12]}: a setup prepares the workspace, it must not commit"
        )
    untracked = await own_git(
        "ls-files", "--others", "--exclude-standard", "--directory", "--no-empty-directory", "-z",
        cwd=repo,
    )  # fmt: skip
    created = [name for name in untracked.stdout.split("\0") if name]
    await _exclude(repo, created)
    report.excluded.extend(created)
    changed = await own_git("status", "--porcelain=v1", "-z", "--untracked-files=no", cwd=repo)
    paths = _porcelain_paths(changed.stdout)
    if paths:
        await own_git(
            "restore", "--source=HEAD", "--staged", "--worktree", "--", *paths,
            cwd=repo,
            env={"GIT_LITERAL_PATHSPECS": "1"},
        )  # fmt: skip
        report.restored.extend(paths)


def _porcelain_paths(output: str) -> list[str]:
    """Paths of ``git status --porcelain=v1 -z`` (a rename's source path included)."""
    fields = output.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            paths.append(fields[i])
            i += 1
    return sorted(set(paths))


# ---- running the command


async def _run_setup_command(
    ws: Workspace,
    config: SetupConfig,
    report: SetupReport,
    source: s.RepoSource,
    fence: Fence | None,
) -> None:
    assert config.command is not None
    command = config.command
    report.command = command_text(command)
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    if fence is not None:
        argv = fence.command(argv)
    # the command runs the project's own tooling (install scripts included): it gets what
    # an agent gets, not baro's credentials
    user_repo = Path(source.location) if source.kind == "path" else None
    env = agent_env(ws.scratch, workdir=ws.repo, away_from=user_repo) | ws.env
    env["BARO_WORKSPACE"] = str(ws.repo)
    started = time.monotonic()
    result = await run_in_group(
        argv, cwd=ws.repo, env=env, timeout=config.timeout_s, keep_chars=SETUP_EXCERPT_CHARS
    )
    report.seconds = time.monotonic() - started
    report.exit_code, report.timed_out = result.exit_code, result.exit_code is None
    report.output = result.output
