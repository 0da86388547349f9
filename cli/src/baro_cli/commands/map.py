"""`baro map`: normalize a captured agent wire stream (a debugging aid, and how fixtures are checked)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import msgspec
import typer

from baro_cli.app import app, fail
from baro_shared.mappers import mapper_for, summarize

_encode = msgspec.json.Encoder().encode


@app.command("map")
def map_stream(
    file: Annotated[
        str,
        typer.Argument(help="The captured stream (JSON lines); - reads stdin."),
    ],
    backend: Annotated[
        str, typer.Option(help="Whose wire format: claude, codex, opencode, pi (or scripted).")
    ],
    summary: Annotated[
        bool, typer.Option("--summary", help="Print one JSON object summing up the stream.")
    ] = False,
) -> None:
    """Print the normalized events of a captured agent stream as JSON lines."""
    try:
        mapper = mapper_for(backend)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with _open(file) as stream:
        lines = _lines(stream, file)
        out = sys.stdout.buffer
        try:
            if summary:
                out.write(_encode(summarize(backend, lines)) + b"\n")
            else:
                for line in lines:
                    _write(out, mapper.feed(line))
                _write(out, mapper.finish(None))
            out.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()


def _write(out: BinaryIO, events: list[msgspec.Struct]) -> None:
    for event in events:
        out.write(_encode(event) + b"\n")


@contextlib.contextmanager
def _open(file: str) -> Iterator[BinaryIO]:
    if file == "-":
        yield sys.stdin.buffer
        return
    path = Path(file)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise fail(
            f"{file} does not exist: pass the path of a captured stream, or - for stdin"
        ) from None
    except IsADirectoryError:
        raise fail(f"{file} is a directory: pass the path of a captured stream file") from None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _lines(stream: BinaryIO, name: str) -> Iterator[bytes]:
    try:
        for line in stream:
            yield line.rstrip(b"\r\n")
    except OSError as exc:
        raise fail(f"cannot read {name}: {exc.strerror or exc}") from None


def _quiet_broken_pipe() -> None:
    """The reader went away (``baro map ... | head``): stop without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)
