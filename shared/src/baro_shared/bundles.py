"""A git bundle's header read without git: its heads, the commits it was built on, and
where its pack starts (what ``git bundle list-heads`` and ``verify`` read).

Both ends of a story's integration take a bundle's objects by indexing its pack with
``git index-pack --stdin --fix-thin`` rather than ``git bundle unbundle``, which starts
index-pack as a second process after walking the repository's history to verify the
prerequisites: the merger because it checks them itself, the runner because a missing
one fails the checkout of the base anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
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
