"""Synthetic repositories with a long history, for the source-cache benchmark.

A repository of about 1 MB, 100 MB or 1 GB of packed history, made with ``git fast-import``
from a fixed seed (the same bytes, the same commit ids, on every machine), and kept under
``bench/.work/repos/`` so reruns do not make it again.

Shape: 600 files in 30 directories, each starting at 1 KB; every later commit rewrites 3
of them with new text of 1 to 60 KB (random base64 lines, which neither compress much nor
delta against their previous version). The history grows by about 70 KB per commit until
it reaches the size asked for; the tree at the head is about 18 MB for the two larger
sizes and a few hundred KB for the smallest.

    .venv/bin/python -m bench.synthetic_repo 1mb 100mb 1gb
"""

from __future__ import annotations

import base64
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from baro_shared.gitutil import git_env

ROOT = Path(__file__).resolve().parent / ".work" / "repos"
SIZES = {"1mb": 1 << 20, "100mb": 100 << 20, "1gb": 1 << 30}
SEED = 20
VERSION = 1  # bump when the shape changes: cached repositories are made again
DIRS, FILES_PER_DIR = 30, 20
CHANGED_PER_COMMIT = 3
PACKED_RATIO = 0.76  # base64 text deflates to about this share of its size
EPOCH = 1_700_000_000


def path_of(size: str) -> Path:
    return ROOT / f"{size}-v{VERSION}"


def ensure(size: str) -> Path:
    """The repository of ``size`` (a key of SIZES), made once and reused."""
    repo = path_of(size)
    if (repo / ".git" / "baro-bench-done").exists():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    repo.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _git(repo.parent, "init", "--quiet", "--initial-branch=main", repo.name)
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=repo,
        stdin=subprocess.PIPE,
        env=git_env(),
    )
    assert proc.stdin is not None
    for chunk in _stream(SIZES[size]):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed making the {size} repository")
    _git(repo, "checkout", "--quiet", "--force", "main")
    (repo / ".git" / "baro-bench-done").write_text(f"{time.monotonic() - started:.1f} s\n")
    return repo


def _text(rng: random.Random, size: int) -> bytes:
    raw = base64.b64encode(rng.randbytes(size * 3 // 4))
    return b"\n".join(raw[i : i + 76] for i in range(0, len(raw), 76)) + b"\n"


def _blob(data: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(data), data)


def _commit(n: int, message: str, changes: list[tuple[str, bytes]]) -> bytes:
    when = EPOCH + n * 600
    who = b"Bench Author <bench@example.com> %d +0000" % when
    parts = [
        b"commit refs/heads/main\n",
        b"author " + who + b"\n",
        b"committer " + who + b"\n",
        _blob(message.encode()),
    ]
    for path, content in changes:
        parts.append(b"M 100644 inline " + path.encode() + b"\n" + _blob(content))
    return b"".join(parts)


def _stream(target: int) -> Iterator[bytes]:
    rng = random.Random(SEED)
    paths = [f"pkg{d:02}/module_{f:02}.py" for d in range(DIRS) for f in range(FILES_PER_DIR)]
    first = [(p, _text(rng, 1024)) for p in paths]
    written = sum(len(c) for _, c in first)
    yield _commit(0, "initial layout", first)
    n = 0
    while written * PACKED_RATIO < target:
        n += 1
        changes = [(p, _text(rng, rng.randint(1024, 60 * 1024))) for p in rng.sample(paths, 3)]
        written += sum(len(c) for _, c in changes)
        yield _commit(n, f"change {n}: {', '.join(p for p, _ in changes)}", changes)
    yield b"done\n"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=git_env(), check=True)
    return done.stdout.decode().strip()


def describe(repo: Path) -> dict[str, float]:
    """Packed history size (MB), commits and files at the head of a generated repository."""
    counts = dict(line.split(": ", 1) for line in _git(repo, "count-objects", "-v").splitlines())
    size_kb = int(counts["size-pack"]) + int(counts["size"])
    return {
        "history_mb": round(size_kb / 1024, 1),
        "commits": int(_git(repo, "rev-list", "--count", "HEAD")),
        "files": len(_git(repo, "ls-files").splitlines()),
    }


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SIZES):
        made = ensure(name)
        print(name, made, describe(made))
