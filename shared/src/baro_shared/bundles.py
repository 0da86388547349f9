"""A git bundle's header read without git: its heads, the commits it was built on, and
where its pack starts (what ``git bundle list-heads`` and ``verify`` read).

Both ends of a story's integration take a bundle's objects by indexing its pack with
``git index-pack --stdin --fix-thin`` rather than ``git bundle unbundle``, which starts
index-pack as a second process after walking the repository's history to verify the
prerequisites: the merger because it checks them itself, the runner because a missing
one fails the checkout of the base anyway. Likewise a bundle is written as its header and
one ``git pack-objects`` (``write_bundle``), where ``git bundle create`` walks the history
itself and then starts pack-objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from baro_shared.gitutil import own_git

V2_SIGNATURE = b"# v2 git bundle\n"
SIGNATURES = (V2_SIGNATURE, b"# v3 git bundle\n")
HEADER_MAX = 1 << 20
_OID = re.compile(r"[0-9a-f]{40}")


class BundleUnreadable(ValueError):
    """Not a full git bundle of SHA-1 objects."""


@dataclass(frozen=True)
class BundleHeader:
    heads: list[tuple[str, str]]  # (object id, ref name) of each ref the bundle holds
    prerequisites: list[str]  # the commits it was built on
    pack_offset: int  # where its pack starts


def read_bundle_header(bundle: Path) -> BundleHeader:
    """Raises BundleUnreadable for a file that is not a full git bundle of SHA-1 objects
    (a v3 bundle's ``@filter`` would leave objects out)."""
    try:
        with bundle.open("rb") as file:
            header = file.read(HEADER_MAX)
    except OSError as exc:
        raise BundleUnreadable(f"{bundle} is not a readable git bundle: {exc.strerror}") from None
    end = header.find(b"\n\n")
    if not header.startswith(SIGNATURES) or end == -1:
        raise BundleUnreadable(f"{bundle} is not a readable git bundle: no bundle header")
    heads: list[tuple[str, str]] = []
    prerequisites: list[str] = []
    for line in header[:end].decode("utf-8", "replace").splitlines()[1:]:
        if line.startswith("@"):
            if line != "@object-format=sha1":
                raise BundleUnreadable(f"{bundle} is not a full git bundle: {line[1:60]}")
            continue
        oid, _, name = line.removeprefix("-").partition(" ")
        if not _OID.fullmatch(oid):
            raise BundleUnreadable(f"{bundle} is not a readable git bundle: {line[:60]!r}")
        if line.startswith("-"):
            prerequisites.append(oid)
        else:
            heads.append((oid, name))
    return BundleHeader(heads, prerequisites, end + 2)


async def write_bundle(repo: Path, ref: str, head: str, base: str, out: Path) -> None:
    """Write to ``out`` a bundle of ``base..head`` whose one ref is ``ref`` at ``head``:
    what ``git bundle create out <ref> ^<base>`` writes, git's own bundle format (v2), with
    ``base`` its one prerequisite (``git bundle create`` also lists the older commits the
    story's history reaches past it, all of which ``base`` reaches too) and the same thin
    pack of every object ``head`` reaches and ``base`` does not. ``head`` and ``base`` are
    commit ids; raises GitError when git cannot pack them."""
    if not (_OID.fullmatch(head) and _OID.fullmatch(base)) or head == base:
        raise ValueError(f"a bundle needs two different commit ids, not {head!r} and {base!r}")
    with out.open("wb") as file:
        file.write(V2_SIGNATURE + f"-{base}\n{head} {ref}\n\n".encode())
        file.flush()
        await own_git(
            "pack-objects", "--revs", "--thin", "--stdout", "--delta-base-offset", "--quiet",
            cwd=repo, input=f"{head}\n^{base}\n".encode(), output=file,
        )  # fmt: skip
