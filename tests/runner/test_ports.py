"""Each running story's own block of ports: the choice, the machine-wide locks, a real run."""

from __future__ import annotations

import json
import random
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_runner.ports import NoFreePorts, PortBlocks, PortRange, first_free, port_env
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import request_for, run_to_end

# --------------------------------------------------------------------------- pure


def test_blocks_follow_each_other() -> None:
    ports = PortRange(start=30000, count=10, blocks=3)
    assert [ports.block(i) for i in range(3)] == [
        range(30000, 30010),
        range(30010, 30020),
        range(30020, 30030),
    ]
    with pytest.raises(IndexError):
        ports.block(3)


def test_a_range_past_the_last_port_is_refused() -> None:
    with pytest.raises(ValueError, match="past 65535"):
        PortRange(start=65000, count=100, blocks=6)


def test_settings_past_the_last_port_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="reaches port 66999, past 65535"):
        Settings(port_range_start=65000, port_block_size=10, port_blocks=200)


def test_the_environment_names_the_block_and_its_first_port() -> None:
    assert port_env(range(30010, 30020)) == {
        "BARO_PORT_BASE": "30010",
        "BARO_PORT_COUNT": "10",
        "PORT": "30010",
    }


def test_the_first_free_block_is_the_lowest() -> None:
    assert first_free({0, 1, 3}, 5) == 2
    assert first_free(set(), 5) == 0
    assert first_free({0, 1}, 2) is None


# One step: a runner process (0..2) starts a story, or the story at a position ends.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 2)),
        st.tuples(st.just("end"), st.integers(0, 20)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, count=st.integers(1, 5), blocks=st.integers(1, 6))
def test_stories_running_at_the_same_time_never_share_a_port(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[str, int]],
    count: int,
    blocks: int,
) -> None:
    """Three runner processes of one machine (each its own PortBlocks on the same lock
    directory, so the locks are the real flocks) start and end stories in any order: the
    ports of the stories running at any moment are disjoint, and a story is refused only
    when every block is held."""
    lock_dir = tmp_path_factory.mktemp("ports")
    port_range = PortRange(start=40000, count=count, blocks=blocks)
    runners = [PortBlocks(lock_dir, port_range) for _ in range(3)]
    running: list[tuple[PortBlocks, object]] = []
    try:
        for action, n in steps:
            if action == "start":
                try:
                    running.append((runners[n], runners[n].acquire()))
                except NoFreePorts:
                    assert len(running) == blocks
            elif running:
                runner, lease = running.pop(n % len(running))
                runner.release(lease)  # type: ignore[arg-type]
            held = [set(lease.ports) for _, lease in running]  # type: ignore[attr-defined]
            assert sum(len(p) for p in held) == len(set().union(*held)), "ports overlap"
            assert all(p <= set(range(40000, 40000 + count * blocks)) for p in held)
    finally:
        for runner, lease in running:
            runner.release(lease)  # type: ignore[arg-type]


def test_a_lease_is_given_back_when_its_story_ends(tmp_path: Path) -> None:
    blocks = PortBlocks(tmp_path, PortRange(start=30000, count=2, blocks=1))
    with blocks.lease() as lease:
        assert lease.ports == range(30000, 30002)
        with pytest.raises(NoFreePorts, match="BARO_PORT_BLOCKS"):
            PortBlocks(tmp_path, blocks.range).acquire()
    with PortBlocks(tmp_path, blocks.range).lease() as again:
        assert again.index == 0


# --------------------------------------------------------------------------- a real run

# The setup command of both stories: serve on $PORT and stay up until the other story's
# server answers in another block (then a little longer, for the other story to see this
# one), so both hold their ports at the same moment. A port
# given to both would make the second bind fail, and the setup with it.
SERVE = """\
import os, socket, sys, time
port, base, count = (int(os.environ[k]) for k in ("PORT", "BARO_PORT_BASE", "BARO_PORT_COUNT"))
assert port == base and count == 2, (port, base, count)
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
print("serving on", port)
others = [p for p in range({start}, {end}, count) if p != port]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    for other in others:
        try:
            socket.create_connection(("127.0.0.1", other), timeout=0.2).close()
            print("another story serves on", other)
            time.sleep(3)  # long enough for the other story to see this one
            sys.exit(0)
        except OSError:
            pass
    time.sleep(0.1)
sys.exit("no other story's server came up")
"""


def _bindable(ports: range) -> bool:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with a small port range of this test's own: below the
    kernel's ephemeral ports (32768 and up on Linux), where every connection of the tests
    running beside this one takes its local port, and above baro's default range, free
    when chosen."""
    start = random.randrange(21000, 32000, 100)
    while not _bindable(range(start, start + 8)):
        start = random.randrange(21000, 32000, 100)
    return settings.model_copy(
        update={"port_range_start": start, "port_block_size": 2, "port_blocks": 4}
    )


async def test_two_parallel_stories_whose_setup_serves_on_port_both_succeed(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    start = stack.port_range_start
    serve = SERVE.format(start=start, end=start + 2 * 4)
    toml = f'[setup]\ncommand = [{json.dumps(sys.executable)}, "serve.py"]\ntimeout = 90\n'
    repo = make_repo(
        tmp_path / "user",
        {"a.py": "A = 0\n", "b.py": "B = 0\n", "serve.py": serve, ".baro.toml": toml},
    )
    record = 'echo "PORTS = \\"$BARO_PORT_BASE $BARO_PORT_COUNT $PORT\\"" > {}'
    script = {
        "stories": [
            {"match": {"id": "S1"}, "steps": [{"run": record.format("a.py")}]},
            {"match": {"id": "S2"}, "steps": [{"run": record.format("b.py")}]},
        ]
    }
    request = request_for(repo, "update a.py and b.py", script, mode_request="parallel")
    report = await run_to_end(bus, request, timeout=150)
    assert report.status == "delivered", report.reason
    assert report.branch is not None
    told = [
        run_git(repo, "show", f"{report.branch}:{name}").split('"')[1].split()
        for name in ("a.py", "b.py")
    ]
    (base_a, count_a, port_a), (base_b, count_b, port_b) = told
    assert count_a == count_b == "2" and port_a == base_a and port_b == base_b
    blocks = {range(int(base_a), int(base_a) + 2), range(int(base_b), int(base_b) + 2)}
    assert len(blocks) == 2 and not set(blocks.pop()) & set(blocks.pop())
