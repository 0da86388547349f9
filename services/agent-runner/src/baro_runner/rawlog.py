"""An attempt's raw agent output, kept on disk and bounded.

Every stdout line of an agent (its wire stream) and its stderr go, redacted, into the
workspace's ``logs/`` folder in segments of a quarter of the cap. The first segment is
kept whole (how the session began), then only the latest two (how it ended); the ones in
between are deleted as new ones start, so a flooding agent never fills the disk. When the
attempt ends the kept segments are joined, with a marker where bytes were left out, and the
runner uploads them to the object store, where ``baro logs --raw`` reads them. A failed
attempt's workspace keeps its ``logs/`` folder too.

The folder is inside the workspace the agent can write to, so the files are opened with
``O_EXCL | O_NOFOLLOW``: a file or link the agent planted under a segment's name is never
followed or overwritten; logging just stops for that stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from baro_shared.redact import redact

log = logging.getLogger(__name__)

TAIL_SEGMENTS = 2
MIN_SEGMENT_BYTES = 4096
STDERR_LINE_BYTES = 1 << 16
STREAMS = ("stdout", "stderr")


def _json_gap(dropped: int) -> bytes:
    """A line the stream mappers skip (an unknown type), so a joined log still maps."""
    return json.dumps({"type": "baro.log_gap", "dropped_bytes": dropped}).encode() + b"\n"


def _text_gap(dropped: int) -> bytes:
    return f"[baro: {dropped} bytes of this log were left out here]\n".encode()


class RotatingLog:
    """One stream of one attempt: segment files ``<name>.<n>`` in ``directory``."""

    def __init__(
        self, directory: Path, name: str, max_bytes: int, gap: Callable[[int], bytes]
    ) -> None:
        self.directory = directory
        self.name = name
        self.segment_bytes = max(MIN_SEGMENT_BYTES, max_bytes // (TAIL_SEGMENTS + 2))
        self.gap = gap
        self.index = -1
        self.size = 0
        self.dropped = 0
        self.written = 0
        self.broken = False
        self._fd: int | None = None

    def _path(self, index: int) -> Path:
        return self.directory / f"{self.name}.{index}"

    def _open_next(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.index += 1
        self.size = 0
        stale = self.index - TAIL_SEGMENTS
        if stale >= 1:  # segment 0 is the head, always kept
            path = self._path(stale)
            with contextlib.suppress(OSError):
                self.dropped += os.lstat(path).st_size
                path.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND
        self._fd = os.open(self._path(self.index), flags, 0o600)

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            if self._fd is None or (self.size and self.size + len(data) > self.segment_bytes):
                self._open_next()
            assert self._fd is not None
            os.write(self._fd, data)
        except OSError as exc:
            log.warning("agent log %s stopped: %s", self._path(self.index), exc)
            self.broken = True
            return
        self.size += len(data)
        self.written += len(data)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def join(self, out: BinaryIO) -> int:
        """Write the kept segments to ``out`` in order (a marker where some were dropped);
        returns the number of bytes of the log itself."""
        total = 0
        if self.index < 0:
            return total
        tail = range(max(1, self.index - TAIL_SEGMENTS + 1), self.index + 1)
        for index in (0, *tail):
            if index == tail.start and self.dropped:
                out.write(self.gap(self.dropped))
            try:
                fd = os.open(self._path(index), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as segment:
                while chunk := segment.read(1 << 16):
                    out.write(chunk)
                    total += len(chunk)
        return total


class AgentLogs:
    """Both streams of one attempt: stdout lines and stderr, redacted before they are kept."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.streams = {
            "stdout": RotatingLog(directory, "stdout", max_bytes, _json_gap),
            "stderr": RotatingLog(directory, "stderr", max_bytes, _text_gap),
        }
        self._stderr_pending = b""
        if not _own_directory(directory):
            log.warning("agent logs not kept: %s is not a plain directory", directory)
            for stream in self.streams.values():
                stream.broken = True

    def stdout(self, line: bytes) -> None:
        self.streams["stdout"].write(_redacted(line) + b"\n")

    def stderr(self, chunk: bytes) -> None:
        """Chunks are cut into lines first, so a secret split across chunks is still found."""
        pending = self._stderr_pending + chunk
        *lines, rest = pending.split(b"\n")
        for line in lines:
            self.streams["stderr"].write(_redacted(line) + b"\n")
        if len(rest) > STDERR_LINE_BYTES:
            self.streams["stderr"].write(_redacted(rest) + b"\n")
            rest = b""
        self._stderr_pending = rest

    def close(self) -> None:
        if self._stderr_pending:
            self.streams["stderr"].write(_redacted(self._stderr_pending) + b"\n")
            self._stderr_pending = b""
        for stream in self.streams.values():
            stream.close()

    def joined(self, name: str, path: Path) -> bool:
        """Write stream ``name`` joined into ``path``; False when it is empty."""
        with open(path, "wb") as out:
            return self.streams[name].join(out) > 0


def _own_directory(path: Path) -> bool:
    """``path`` exists as a real directory (made before the repository's setup command or
    the agent ran), not a link one of them put in its place."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _redacted(data: bytes) -> bytes:
    text = data.decode("utf-8", "replace")
    cleaned = redact(text)
    return data if cleaned == text else cleaned.encode("utf-8")
