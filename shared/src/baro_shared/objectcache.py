"""Source objects once per repository: a bare repository per source that runs borrow from.

A run's integration repository (merger) and each story's workspace (runner) hold no copy
of the source's history: they name the cache's object directory in their own
``objects/info/alternates`` and write only their new objects (story results, integration
commits) into their own store. Preparing a run therefore costs the same for a 1 MB and a
1 GB history once the cache is warm; a cold cache pays once per source and machine (a
local repository is cloned with hard links, which costs no copy on the same file system).

Layout, under ``<cache_dir>/sources/`` (``SourceCache.path``):

    <name>.git/                       the cache, a bare repository
    <name>.git/refs/baro/fetched/<c>  every base commit fetched into it (kept reachable)
    <name>.git/baro/source            what the source is (for ``baro clean``)
    <name>.git/baro/used              touched on every use (its mtime orders the LRU)
    <name>.git/baro/borrowers/<id>    one file per repository borrowing from it (its path)
    <name>.lock                       flock: one process at a time creates, fetches into,
                                      registers with or removes the cache

Safety rules (docs/configuration.md, "Source caches"):

- Nothing is ever deleted from a cache while it exists: it is a ``preciousObjects``
  repository, so ``git gc``/``prune``/``repack -d`` refuse to drop objects in it, and baro
  never prunes it. A cache goes as a whole (``trim``, ``baro clean``), and only when no
  live repository borrows from it.
- The user's repository is only read: a cold cache is ``git clone --bare`` of it (hard
  links where the file system allows, else a copy), later updates are ``git fetch`` from
  it. Hard links keep their content when the user's ``git gc`` deletes or rewrites the
  packs, so nothing of the user's can take objects away from a cache.
- Borrowers register under the lock before they read, so a cache is never removed
  between "is anyone using it" and "I am using it". A borrower that is deleted
  (``rm -rf`` of a workspace) only leaves a stale registration, dropped on the next trim.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from baro_shared.gitutil import git, is_object_id, own_git
from baro_shared.schemas import RepoSource
from baro_shared.sources import redact_url, snapshot_name, snapshot_parts

CACHE_SUFFIX = ".git"
LOCK_SUFFIX = ".lock"
FETCHED_PREFIX = "refs/baro/fetched/"
SCRATCH_PREFIX = "refs/baro/scratch/"
KEPT_FETCHED = 16  # refs/baro/fetched/ kept per cache (``_bound_fetched``)
_FETCH = ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules")
# a URL other than file:// or an scp-like host:path
_REMOTE = re.compile(r"^(?!file://)[A-Za-z][A-Za-z0-9+.-]*://|^[^/:]+:")
_LOCK_POLL_S = (0.005, 0.25)  # first and longest wait between tries of a held lock
_FULL_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# set on every cache: objects are never deleted in it, nothing runs behind baro's back
_CACHE_CONFIG = (
    ("core.repositoryformatversion", "1"),
    ("extensions.preciousObjects", "true"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("core.logAllRefUpdates", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("uploadpack.allowFilter", "true"),
)


class CacheError(RuntimeError):
    """A source cache cannot be created or read."""


@dataclass(frozen=True)
class SourceCache:
    """One source's cache under ``root`` (``<cache_dir>/sources``)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(CACHE_SUFFIX)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.name + LOCK_SUFFIX)

    @property
    def objects(self) -> Path:
        return self.path / "objects"

    @property
    def meta(self) -> Path:
        return self.path / "baro"

    @property
    def borrowers_dir(self) -> Path:
        return self.meta / "borrowers"

    def exists(self) -> bool:
        return (self.path / "HEAD").is_file()


def cache_for(root: Path, kind: str, identity: str) -> SourceCache:
    """The cache of the source ``identity`` (a resolved path, a URL, a store key) of
    ``kind``: a readable stem plus a digest, so two sources never share a cache by name."""
    digest = hashlib.sha256(f"{kind}\0{identity}".encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", identity.rstrip("/").rsplit("/", 1)[-1])
    stem = stem.removesuffix(".git").removesuffix(".bundle").strip("-.")[:40] or kind
    return SourceCache(root / f"{stem}-{digest}{CACHE_SUFFIX}")


def path_identity(location: str) -> str:
    return str(Path(location).expanduser().resolve())


def cache_of(root: Path, source: RepoSource) -> SourceCache:
    """The cache of a run's source: per local path, per URL, and for bundles per
    repository (every ``sources/<key>/<commit>.bundle`` upload of one repository shares
    one cache; any other bundle name has its own)."""
    return cache_for(root, source.kind, _identity(source))


def describe(source: RepoSource) -> str:
    """What ``baro clean`` shows for the cache of ``source`` (never a URL's secrets)."""
    if source.kind == "url":
        return f"url {redact_url(source.location)}"
    return f"{source.kind} {_identity(source)}"


def _identity(source: RepoSource) -> str:
    if source.kind == "url":
        return source.location.rstrip("/")
    if source.kind == "bundle":
        snapshot = snapshot_parts(source.location)
        return f"sources/{snapshot[0]}" if snapshot else source.location
    return path_identity(source.location)


# --------------------------------------------------------------------------- locking


@contextlib.asynccontextmanager
async def locked(cache: SourceCache) -> AsyncIterator[None]:
    """Hold the cache's lock (an flock, shared by every process using ``root``).

    The stories of one process queue for it on an asyncio lock first, and each gets it the
    moment the one before lets go; only a lock another process holds is waited for by
    polling, so a cancelled waiter leaves nothing behind holding the lock."""
    async with _in_process_lock(cache), _file_lock(cache):
        yield


# per event loop (tests run several), per lock file
_IN_PROCESS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _in_process_lock(cache: SourceCache) -> asyncio.Lock:
    mine = _IN_PROCESS.setdefault(asyncio.get_running_loop(), {})
    return mine.setdefault(cache.lock_path, asyncio.Lock())


@contextlib.asynccontextmanager
async def _file_lock(cache: SourceCache) -> AsyncIterator[None]:
    cache.lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        wait = _LOCK_POLL_S[0]
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LOCK_POLL_S[1])
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def try_lock(cache: SourceCache) -> int | None:
    """The lock's descriptor when it was free (close it to release), else None."""
    cache.lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


# --------------------------------------------------------------------------- creating


async def create(cache: SourceCache, description: str, *, seed: Path | None = None) -> bool:
    """Make the cache if it is not there (call under ``locked``); True when it was made.

    ``seed``: a local repository to clone it from (hard links where possible, so a cold
    cache of a large local history costs no copy). The cache appears complete or not at
    all: it is built next to its final name and renamed into place."""
    if cache.exists():
        return False
    building = cache.path.with_name(f".{cache.name}.{uuid.uuid4().hex[:8]}.building")
    try:
        made = None
        if seed is not None:
            # --dissociate: a seed that itself borrows (a clone --shared) is copied, so the
            # cache never depends on another repository's objects
            made = await own_git(
                "clone", "--bare", "--quiet", "--dissociate", "--no-tags",
                "--", str(seed), str(building),
                check=False, timeout=3600,
            )  # fmt: skip
        if made is None or made.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            await own_git("init", "--quiet", "--bare", str(building))
        for key, value in _CACHE_CONFIG:
            await own_git("config", key, value, cwd=building)
        await own_git("config", "--remove-section", "remote.origin", cwd=building, check=False)
        meta = building / "baro"
        (meta / "borrowers").mkdir(parents=True, exist_ok=True)
        (meta / "source").write_text(description + "\n")
        (meta / "used").touch()
        building.rename(cache.path)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return True


def remove_leftovers(root: Path) -> list[Path]:
    """Caches half-built by a process that died (``baro clean`` removes them)."""
    if not root.is_dir():
        return []
    gone = [p for p in root.glob(".*.building") if p.is_dir()]
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


# --------------------------------------------------------------------------- fetching


async def has_commit(cache: SourceCache, commit: str) -> bool:
    """Is ``commit`` (a full object id) a commit in the cache?"""
    if not cache.exists() or not _FULL_OID.match(commit.lower()):
        return False
    found = await own_git("cat-file", "-e", f"{commit}^{{commit}}", cwd=cache.path, check=False)
    return found.returncode == 0


async def resolve(cache: SourceCache, rev: str) -> str | None:
    result = await own_git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
        cwd=cache.path,
        check=False,
    )  # fmt: skip
    return result.out if result.returncode == 0 and result.out else None


@dataclass(frozen=True)
class Fetched:
    """What ``fetch`` found: the commit, or why not (git's own words)."""

    commit: str | None
    tips: list[str]  # commits at the source's refs, when every ref had to be fetched
    stderr: str
    failed: bool  # the source could not be read at all


async def fetch(
    cache: SourceCache, location: str, wanted: str, *, commit: str | None = None
) -> Fetched:
    """Bring ``wanted`` (a ref, ``HEAD`` or a commit) from ``location`` into the cache,
    with only the objects the cache lacks (call under ``locked``).

    ``commit`` (full or abbreviated) is the commit the caller expects: a direct fetch
    that gives another commit, or none, falls back to fetching every ref of the source
    and looking the commit up. Every commit found is kept at ``refs/baro/fetched/``."""
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        # a remote source may need the user's credentials and URL rewrites; fetching from
        # a local one starts upload-pack here, which must not read what an agent wrote
        own = not _REMOTE.match(location)
        direct = await git(
            *_FETCH, "--", location, f"+{wanted}:{scratch}/wanted", cwd=cache.path, check=False,
            timeout=3600, own=own,
        )  # fmt: skip
        if direct.returncode == 0:
            found = await resolve(cache, f"{scratch}/wanted")
            if found is not None and (commit is None or found.startswith(commit.lower())):
                await _keep(cache, [found])
                return Fetched(found, [], "", False)
        everything = await git(
            *_FETCH, "--", location, f"+refs/*:{scratch}/all/*", cwd=cache.path, check=False,
            timeout=3600, own=own,
        )  # fmt: skip
        if everything.returncode != 0:
            return Fetched(None, [], direct.stderr or everything.stderr, True)
        tips = sorted(set((await _refs(cache, f"{scratch}/all/")).values()))
        found = await resolve(cache, commit) if commit else None
        await _keep(cache, [c for c in [found, *tips] if c])
        return Fetched(found, tips, direct.stderr, False)
    finally:
        await _drop_refs(cache, scratch + "/")


async def _refs(cache: SourceCache, prefix: str) -> dict[str, str]:
    listed = await own_git(
        "for-each-ref", "--format=%(objectname) %(refname)", prefix, cwd=cache.path
    )
    refs = {}
    for line in listed.stdout.splitlines():
        oid, _, name = line.partition(" ")
        if name:
            refs[name] = oid
    return refs


async def _keep(cache: SourceCache, commits: Iterable[str]) -> None:
    lines = []
    for oid in dict.fromkeys(commits):
        kind = await own_git("cat-file", "-t", oid, cwd=cache.path, check=False)
        if kind.out == "commit":
            lines.append(f"update {FETCHED_PREFIX}{oid} {oid}\n")
    if lines:
        await own_git("update-ref", "--stdin", cwd=cache.path, input="".join(lines).encode())
        await _bound_fetched(cache)


def _has_fetched_ref(cache: SourceCache, commit: str) -> bool:
    """Is ``refs/baro/fetched/<commit>`` there, loose or packed (read without git)?"""
    ref = FETCHED_PREFIX + commit
    if (cache.path / ref).is_file():
        return True
    try:
        packed = (cache.path / "packed-refs").read_text()
    except OSError:
        return False
    return f"{commit} {ref}\n" in packed


async def _bound_fetched(cache: SourceCache) -> None:
    """Keep the refs of the newest ``KEPT_FETCHED`` fetched commits, packed into one file:
    enough for a fetch to tell the source what the cache has, and no ref file per run.
    Objects stay (the cache is never pruned), so a run borrowing an older base loses
    nothing."""
    listed = await own_git(
        "for-each-ref", "--sort=-committerdate", "--format=%(refname)", FETCHED_PREFIX,
        cwd=cache.path,
    )  # fmt: skip
    stale = listed.out.splitlines()[KEPT_FETCHED:]
    if stale:
        payload = "".join(f"delete {name}\n" for name in stale).encode()
        await own_git("update-ref", "--stdin", cwd=cache.path, input=payload, check=False)
    await own_git("pack-refs", "--all", cwd=cache.path, check=False)


async def _drop_refs(cache: SourceCache, prefix: str) -> None:
    refs = await _refs(cache, prefix)
    if refs:
        payload = "".join(f"delete {name}\n" for name in refs).encode()
        await own_git("update-ref", "--stdin", cwd=cache.path, input=payload, check=False)


# --------------------------------------------------------------------------- consolidating

MAX_SMALL_PACKS = 32  # small packs a cache may hold before they are packed into one
MAX_LOOSE = 512  # loose objects likewise (a fetch of a few commits leaves them loose)
SMALL_PACK_BYTES = 32 << 20  # larger packs (the first clone's) are never rewritten


async def consolidate(cache: SourceCache) -> bool:
    """Pack what incremental fetches left (small packs, loose objects) into one pack,
    so a cache fetched into on every run does not grow by files per run (call under
    ``locked``). Every object stays: the new pack holds all of them before the old files
    go, as ``git repack`` does on a live repository, and a borrower that looks in the
    meantime finds each object in one or the other. True when it packed."""
    pack_dir = cache.objects / "pack"
    small = [
        p
        for p in sorted(pack_dir.glob("pack-*.pack"))
        if p.with_suffix(".idx").is_file()
        and not p.with_suffix(".keep").exists()
        and p.stat().st_size < SMALL_PACK_BYTES
    ]
    loose = [
        f"{d.name}{f.name}"
        for d in cache.objects.glob("[0-9a-f][0-9a-f]")
        for f in d.iterdir()
        if _FULL_OID.match(d.name + f.name)
    ]
    if len(small) <= MAX_SMALL_PACKS and len(loose) <= MAX_LOOSE:
        return False
    oids = set(loose)
    for pack in small:
        listed = await own_git(
            "show-index", cwd=cache.path, input=pack.with_suffix(".idx").read_bytes()
        )
        oids.update(line.split()[1] for line in listed.stdout.splitlines() if line.strip())
    made = await own_git(
        "pack-objects", "--quiet", "--delta-base-offset", str(pack_dir / "pack"),
        cwd=cache.path, input="".join(f"{oid}\n" for oid in sorted(oids)).encode(),
        timeout=3600,
    )  # fmt: skip
    kept = f"pack-{made.out}"
    for pack in small:
        if pack.stem != kept:
            for part in sorted(pack_dir.glob(pack.stem + ".*"), key=lambda p: p.suffix != ".idx"):
                part.unlink(missing_ok=True)  # the index first: no reader opens a lone pack
    await own_git("prune-packed", "--quiet", cwd=cache.path)
    return True


# --------------------------------------------------------------------------- borrowing


def _borrower_id(git_dir: Path) -> str:
    return hashlib.sha256(str(git_dir.resolve()).encode()).hexdigest()[:24]


def register(cache: SourceCache, git_dir: Path) -> None:
    """Record that the repository at ``git_dir`` borrows from the cache (under ``locked``;
    ``git_dir`` exists already, so a concurrent trim sees a live borrower)."""
    cache.borrowers_dir.mkdir(parents=True, exist_ok=True)
    entry = cache.borrowers_dir / _borrower_id(git_dir)
    entry.write_text(str(git_dir.resolve()) + "\n")
    touch(cache)


def attach(cache: SourceCache, git_dir: Path) -> None:
    """Make the repository at ``git_dir`` read the cache's objects (its alternates)."""
    info = git_dir / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(str(cache.objects.resolve()) + "\n")


def borrowed_cache(git_dir: Path) -> SourceCache | None:
    """The cache the repository at ``git_dir`` borrows from, if it is one."""
    for objects in borrowed_objects(git_dir):
        if objects.name == "objects" and objects.parent.name.endswith(CACHE_SUFFIX):
            return SourceCache(objects.parent)
    return None


def borrowed_objects(git_dir: Path) -> list[Path]:
    """The object directories the repository at ``git_dir`` reads besides its own (its
    alternates): a process working in it must be able to read them."""
    try:
        lines = (git_dir / "objects" / "info" / "alternates").read_text().splitlines()
    except OSError:
        return []
    return [Path(line.strip()) for line in lines if line.strip() and not line.startswith("#")]


def borrowed_chain(git_dir: Path) -> list[Path]:
    """Every object directory the repository at ``git_dir`` reads through its alternates,
    and through theirs (a clone of a repository that itself borrows from a cache)."""
    found: list[Path] = []
    pending = borrowed_objects(git_dir)
    while pending:
        objects = pending.pop(0)
        if objects in found:
            continue
        found.append(objects)
        pending += borrowed_objects(objects.parent)
    return found


def release(git_dir: Path) -> None:
    """Forget the borrower at ``git_dir`` (before or after it is deleted)."""
    cache = borrowed_cache(git_dir)
    if cache is not None:
        with contextlib.suppress(OSError):
            (cache.borrowers_dir / _borrower_id(git_dir)).unlink()


def borrowers(cache: SourceCache, *, drop_stale: bool = False) -> list[Path]:
    """Repositories that borrow from the cache and still exist."""
    live = []
    if not cache.borrowers_dir.is_dir():
        return live
    for entry in sorted(cache.borrowers_dir.iterdir()):
        try:
            path = Path(entry.read_text().strip())
        except OSError:
            continue
        if path.exists():
            live.append(path)
        elif drop_stale:
            with contextlib.suppress(OSError):
                entry.unlink()
    return live


def touch(cache: SourceCache) -> None:
    with contextlib.suppress(OSError):
        os.utime(cache.meta / "used")


# --------------------------------------------------------------------------- accounting


@dataclass(frozen=True)
class CacheInfo:
    cache: SourceCache
    source: str  # "path /home/me/app", "url https://...", ...
    bytes: int  # on disk
    shared_bytes: int  # of which hard-linked with another repository (the user's)
    last_used: float  # epoch seconds
    borrowers: list[Path]

    @property
    def own_bytes(self) -> int:
        """What removing the cache frees: its bytes not shared by hard links."""
        return self.bytes - self.shared_bytes


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes on disk, bytes of files with more than one hard link) under ``path``."""
    total = shared = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            size = st.st_blocks * 512
            total += size
            if st.st_nlink > 1:
                shared += size
    return total, shared


def caches(root: Path) -> list[SourceCache]:
    if not root.is_dir():
        return []
    return [SourceCache(p) for p in sorted(root.glob(f"*{CACHE_SUFFIX}")) if p.is_dir()]


def inspect(cache: SourceCache, *, drop_stale: bool = False) -> CacheInfo:
    try:
        source = (cache.meta / "source").read_text().strip()
    except OSError:
        source = "unknown source"
    try:
        used = (cache.meta / "used").stat().st_mtime
    except OSError:
        used = 0.0
    size, shared = disk_usage(cache.path)
    return CacheInfo(cache, source, size, shared, used, borrowers(cache, drop_stale=drop_stale))


def inventory(root: Path) -> list[CacheInfo]:
    """Every cache under ``root``, least recently used first."""
    return sorted((inspect(c) for c in caches(root)), key=lambda i: i.last_used)


def remove(cache: SourceCache) -> bool:
    """Delete the cache when nothing borrows from it (takes its lock; False when busy or
    borrowed)."""
    fd = try_lock(cache)
    if fd is None:
        return False
    try:
        if borrowers(cache, drop_stale=True):
            return False
        # renamed first: a crash halfway leaves a leftover, never a half cache in place
        doomed = cache.path.with_name(f".{cache.name}.{uuid.uuid4().hex[:8]}.building")
        if cache.path.exists():
            cache.path.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def trim(
    root: Path, max_bytes: int, *, keep: Iterable[SourceCache] = (), dry_run: bool = False
) -> list[CacheInfo]:
    """Remove least recently used caches nothing borrows until what the caches alone
    hold (``own_bytes``) is at most ``max_bytes``; the removed ones (or, with
    ``dry_run``, the ones it would remove) come back."""
    kept = {c.path for c in keep}
    infos = [inspect(c, drop_stale=not dry_run) for c in caches(root)]
    total = sum(i.own_bytes for i in infos)
    removed = []
    for info in sorted(infos, key=lambda i: i.last_used):
        if total <= max_bytes:
            break
        if info.cache.path in kept or info.borrowers:
            continue
        if dry_run or remove(info.cache):
            removed.append(info)
            total -= info.own_bytes
    return removed


def describe_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def age(seconds_since_epoch: float, now: float | None = None) -> str:
    delta = max(0.0, (now or time.time()) - seconds_since_epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta / size:.0f} {unit} ago"
    return "just now"


def git_line(stderr: str) -> str:
    """The line of git's error output that says what went wrong, for a one-line message:
    its first ``fatal:`` or ``error:`` line (the last line is often advice such as "and the
    repository exists.")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return lines[0] if lines else "git gave no reason"


# --------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class Obtained:
    fetched: Fetched
    created: bool  # the cache was made by this call (a cold cache)
    fetched_objects: bool  # the source was read (False: the cache had the commit)


async def obtain(
    cache: SourceCache,
    description: str,
    locate: Callable[[], Awaitable[str]],
    wanted: str,
    *,
    commit: str | None = None,
    seed: Path | None = None,
    borrower: Path | None = None,
) -> Obtained:
    """Make sure the cache holds ``wanted`` (``commit`` when the caller knows it) and,
    when it does, register ``borrower``: the one step a run's integration repository and
    a story's workspace take before they borrow. The source is read (``locate`` gives
    where from: a path, a URL, a downloaded bundle) only when the cache lacks the commit."""
    async with locked(cache):
        if commit is not None and is_object_id(commit) and _has_fetched_ref(cache, commit):
            # kept by an earlier fetch: the cache holds it, no git needs to say so
            created, known = False, commit
        else:
            created = await create(cache, description, seed=seed)
            known = await resolve(cache, commit) if commit else None
        if known is not None and commit is not None and known.startswith(commit.lower()):
            found, read = Fetched(known, [], "", False), False
            if not _has_fetched_ref(cache, known):
                await _keep(cache, [known])  # a commit the cold clone brought: keep it too
        else:
            found, read = await fetch(cache, await locate(), wanted, commit=commit), True
        if created or read:
            await consolidate(cache)
        if borrower is not None and found.commit is not None:
            register(cache, borrower)
        touch(cache)
    return Obtained(found, created, read)


# --------------------------------------------------------------------------- bundles


class ObjectFiles(Protocol):
    """The object store, as far as source bundles need it (``Bus`` is one)."""

    async def get_file(self, name: str, path: Path) -> None: ...

    async def object_description(self, name: str) -> str | None: ...


MAX_CHAIN = 64
_AGAINST = re.compile(r"\bagainst ([0-9a-f]{40}(?:[0-9a-f]{24})?)\b")


def snapshot_description(against: str | None) -> str:
    """The object description of a snapshot bundle: which earlier snapshot it builds on
    (its history minus that one's), or that it holds the whole history."""
    return f"baro source snapshot; against {against}" if against else "baro source snapshot; full"


def parse_against(description: str | None) -> str | None:
    matched = _AGAINST.search(description or "")
    return matched.group(1) if matched else None


async def locate_bundle(cache: SourceCache, name: str, store: ObjectFiles, scratch: Path) -> str:
    """Download the source bundle ``name`` into ``scratch`` and return its path (call under
    ``locked``, as ``obtain``'s ``locate``).

    A snapshot that builds on an earlier one needs that one's history first: every
    earlier snapshot of its chain the cache lacks is fetched into the cache, oldest first,
    so a cache that has seen the repository downloads only the newest increments, and one
    that never has pays once for the chain. Raises CacheError when a link is missing."""
    links: list[tuple[str, str]] = []
    description = await store.object_description(name)
    if description is None:
        raise CacheError(f"source bundle {name} is not in the object store")
    snapshot = snapshot_parts(name)
    if snapshot is not None:
        against = parse_against(description)
        while against is not None and not await has_commit(cache, against):
            if len(links) >= MAX_CHAIN:
                raise CacheError(f"source bundle {name} builds on more than {MAX_CHAIN} others")
            link = snapshot_name(snapshot[0], against)
            links.append((link, against))
            description = await store.object_description(link)
            if description is None:
                raise CacheError(
                    f"source bundle {link}, which {name} builds on, is no longer in the "
                    "object store: submit the run again (the upload is then complete)"
                )
            against = parse_against(description)
    scratch.mkdir(parents=True, exist_ok=True)
    for link, tip in reversed(links):
        path = scratch / f"{tip}.bundle"
        await store.get_file(link, path)
        got = await fetch(cache, str(path), tip, commit=tip)
        path.unlink(missing_ok=True)
        if got.commit is None:
            raise CacheError(f"source bundle {link} does not hold {tip}: {git_line(got.stderr)}")
    top = scratch / "source.bundle"
    await store.get_file(name, top)
    return str(top)
