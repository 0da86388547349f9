"""Launchers on standby: the fence's launcher started before its agent is known.

Every fenced agent starts through the launcher (``baro_shared.launcher``), and starting
it (an interpreter and its imports) is part of the story's path. A runner keeps a few
started ahead, each waiting on its standard input for the agent it is to start
(``launcher.serve``); a story hands one its agent (``Fence.request``) and a new one starts
in the background. Each launcher starts one agent, inside a fence put up for that agent.

While the runner's stories run baro's own scripted agent (the test/demo agent), the
launchers preload it and run it in their own interpreter instead of starting a second
Python: the stand-in for a real CLI then costs the scheduling benchmark its own work, not
an interpreter's start. A real CLI is started as it always is, by exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from baro_runner.backends import SCRIPTED_MODULE, AgentCommand
from baro_shared.sandbox import standby_command

# how long a launcher that is told to stand down may take to leave before it is killed
STAND_DOWN_S = 2.0


class StandbyLaunchers:
    def __init__(self, size: int, *, preload: bool = False) -> None:
        self.size = size
        self.preload = preload  # what the next launchers started preload
        self._idle: list[tuple[asyncio.subprocess.Process, bool]] = []
        self._starting: set[asyncio.Task[None]] = set()
        self._leaving: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def waiting(self) -> list[int]:
        """The process ids of the launchers standing by."""
        return [proc.pid for proc, _ in self._idle if proc.returncode is None]

    def fill(self) -> None:
        """Start launchers in the background until ``size`` stand by."""
        while not self._closed and len(self._idle) + len(self._starting) < self.size:
            task = asyncio.create_task(self._start_one(self.preload))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self, preload: bool) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *standby_command(
                    dies_with=os.getpid(), preload=SCRIPTED_MODULE if preload else None
                ),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # the agent's process group, as a cold start has it
                env={},  # nothing of the runner's: the agent's environment comes with it
                cwd="/",
            )
        except OSError:
            return  # agents start cold meanwhile
        if self._closed:
            await _stand_down(proc)
        else:
            self._idle.append((proc, preload))

    async def start(self, command: AgentCommand) -> asyncio.subprocess.Process | None:
        """``command`` handed to a launcher on standby, which starts it; None when none
        is ready (or ``command`` is not fenced): the caller starts it as usual."""
        if command.fence is None or command.agent_argv is None or self._closed:
            return None
        wanted = command.inline is not None
        if wanted != self.preload:  # the runner's stories changed kind: so do its launchers
            self.preload = wanted
            self._retire_other_kind(wanted)
        # one that preloaded what this agent is, else any
        self._idle.sort(key=lambda entry: entry[1] != wanted)
        while self._idle:
            proc, preloaded = self._idle.pop(0)
            if proc.returncode is not None or proc.stdin is None:
                continue
            request = command.fence.request(
                command.agent_argv,
                command.env,
                command.cwd,
                command.stdin,
                command.inline if preloaded else None,
            )
            try:
                proc.stdin.write(request)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                await _stand_down(proc)
                continue
            self.fill()
            return proc
        self.fill()
        return None

    def _retire_other_kind(self, wanted: bool) -> None:
        """Stand down, in the background, the idle launchers that did not preload what
        ``wanted`` says, but one (for the agent about to start, if no other is ready)."""
        retired = [entry for entry in self._idle if entry[1] != wanted][1:]
        self._idle = [entry for entry in self._idle if entry not in retired]
        for proc, _ in retired:
            task = asyncio.create_task(_stand_down(proc))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def close(self) -> None:
        """Stand every idle launcher down; none is started any more."""
        self._closed = True
        for task in [*self._starting, *self._leaving]:
            with contextlib.suppress(BaseException):
                await task
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_stand_down(proc) for proc, _ in idle))


async def _stand_down(proc: asyncio.subprocess.Process) -> None:
    """An idle launcher leaves when its standard input closes without an agent."""
    try:
        await asyncio.wait_for(proc.communicate(), STAND_DOWN_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
