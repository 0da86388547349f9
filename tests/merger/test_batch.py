"""The merger's batch integration through its bus handler: a real nats-server (answers,
bundles in the object store) and real git; redelivered and half-done batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from baro_merger.integration import import_story_bundle, integrate_story
from baro_merger.service import Merger
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings

pytestmark = pytest.mark.nats

RUN = "batch1"
GOAL = "update a, b and c"
FILES = {"a.py": "A = 0\n", "b.py": "B = 0\n", "c.py": "C = 0\n", "shared.py": "OWNER = None\n"}


class Recorded:
    """The merger's bus with every publish noted (message id, message) on its way out."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.sent: list[tuple[str, s.BusMessage]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)

    async def publish(self, message: s.BusMessage, msg_id: str) -> None:
        self.sent.append((msg_id, message))
        await self.bus.publish(message, msg_id)


@pytest.fixture
async def merger(settings: Settings) -> AsyncIterator[tuple[Merger, Recorded]]:
    bus = await Bus.open(settings, "test-merger")
    recorded = Recorded(bus)
    try:
        yield Merger(recorded, settings), recorded  # type: ignore[arg-type]
    finally:
        await bus.close()


async def batch_of(
    bench: Any, bus: Recorded, repo: Path, base: str, changes: dict[str, dict[str, str]]
) -> s.IntegrateStories:
    """Each story's result made from ``base`` and uploaded, as runners hand them back."""
    items = []
    for story_id, files in changes.items():
        result = bench.story(repo, base, files)
        name = f"runs/{RUN}/results/{story_id}.bundle"
        await bus.put_file(name, result.bundle)
        surface = [path for path in files if path != "shared.py"]
        items.append(
            s.StoryToIntegrate(
                story=s.Story(id=story_id, title=f"Story {story_id}", write_surface=surface),
                attempt=1,
                bundle=name,
                story_base=base,
                head_commit=result.head,
            )
        )
    return s.IntegrateStories(run_id=RUN, stories=items, goal=GOAL, surface="warn")


def answers(sent: list[tuple[str, s.BusMessage]]) -> list[tuple[str, str, str | None]]:
    return [(mid, type(m).__name__, getattr(m, "integration_head", None)) for mid, m in sent]


async def test_a_batch_is_answered_per_story_and_a_conflict_does_not_hold_up_the_others(
    bench: Any, merger: tuple[Merger, Recorded], tmp_path: Path
) -> None:
    service, bus = merger
    prepared = await bench.prepare(RUN, bench.make_repo("user", FILES))
    cmd = await batch_of(
        bench,
        bus,
        prepared.repo,
        prepared.base,
        {
            "S1": {"a.py": "A = 1\n", "shared.py": "OWNER = 'S1'\n"},
            "S2": {"b.py": "B = 1\n", "shared.py": "OWNER = 'S2'\n"},  # conflicts with S1
            "S3": {"c.py": "C = 1\n"},
        },
    )
    await service.integrate(cmd)

    kinds = [(type(m).__name__, m.story_id) for _, m in bus.sent]  # type: ignore[union-attr]
    assert kinds == [("StoryIntegrated", "S1"), ("MergeConflict", "S2"), ("StoryIntegrated", "S3")]
    first, clash, third = (m for _, m in bus.sent)
    assert isinstance(first, s.StoryIntegrated) and isinstance(third, s.StoryIntegrated)
    assert isinstance(clash, s.MergeConflict) and clash.paths == ["shared.py"]
    head = third.integration_commit
    assert bench.git(prepared.repo, "rev-parse", f"{head}^") == first.integration_commit
    assert first.integration_head == clash.integration_head == third.integration_head == head
    assert first.integration_bundle == third.integration_bundle == clash.integration_bundle
    assert first.files == ["a.py", "shared.py"] and third.files == ["c.py"]
    # the batch's one bundle carries the head and every commit of the batch
    fetched = tmp_path / "head.bundle"
    assert first.integration_bundle is not None
    await bus.get_file(first.integration_bundle, fetched)
    assert bench.git(tmp_path, "bundle", "list-heads", str(fetched)).split()[0] == head

    # asked again (the answers' acks lost): the same answers under the same ids, and
    # nothing integrated twice
    before = answers(bus.sent)
    bus.sent.clear()
    await service.integrate(cmd)
    assert answers(bus.sent) == before
    stories = bench.git(prepared.repo, "log", "--format=%(trailers:key=Baro-Story,valueonly)", head)
    assert [line for line in stories.splitlines() if line] == ["S3", "S1"]


async def test_a_batch_asked_again_after_the_merger_died_in_it_integrates_each_story_once(
    bench: Any, merger: tuple[Merger, Recorded]
) -> None:
    service, bus = merger
    prepared = await bench.prepare(RUN, bench.make_repo("user", FILES))
    cmd = await batch_of(
        bench,
        bus,
        prepared.repo,
        prepared.base,
        {"S1": {"a.py": "A = 1\n"}, "S2": {"b.py": "B = 1\n"}, "S3": {"c.py": "C = 1\n"}},
    )
    # what a merger killed after the batch's first story did before it died
    done = cmd.stories[0]
    bundle = bench.root / "s1.bundle"
    await bus.get_file(done.bundle, bundle)
    await import_story_bundle(prepared.repo, RUN, "S1", 1, bundle, head=done.head_commit)
    was = await integrate_story(
        prepared.repo, RUN, done.story, 1, story_base=prepared.base, goal=GOAL
    )

    await service.integrate(cmd)  # the redelivery, to the merger that took over

    assert [type(m).__name__ for _, m in bus.sent] == ["StoryIntegrated"] * 3
    first, _, last = (m for _, m in bus.sent)
    assert isinstance(first, s.StoryIntegrated) and isinstance(last, s.StoryIntegrated)
    assert first.integration_commit == was.commit, "found integrated, not integrated again"
    assert first.integration_head == last.integration_commit
    log = bench.git(
        prepared.repo,
        "log",
        "--format=%(trailers:key=Baro-Story,valueonly)",
        f"{prepared.base}..{last.integration_commit}",
    )
    assert [line for line in log.splitlines() if line] == ["S3", "S2", "S1"]


async def test_a_last_batch_makes_no_bundle_unless_one_of_its_stories_is_to_run_again(
    bench: Any, merger: tuple[Merger, Recorded]
) -> None:
    service, bus = merger
    prepared = await bench.prepare(RUN, bench.make_repo("user", FILES))
    quiet = await batch_of(bench, bus, prepared.repo, prepared.base, {"S1": {"a.py": "A = 1\n"}})
    await service.integrate(msgspec.structs.replace(quiet, head_bundle=False))
    ((_, done),) = bus.sent
    assert isinstance(done, s.StoryIntegrated)
    assert done.integration_head == done.integration_commit and done.integration_bundle is None

    bus.sent.clear()
    changes = {"S2": {"b.py": "B = 1\n"}, "S3": {"a.py": "A = 3\n"}}  # S3 conflicts with S1
    clash = await batch_of(bench, bus, prepared.repo, prepared.base, changes)
    await service.integrate(msgspec.structs.replace(clash, head_bundle=False))
    kinds = [type(m).__name__ for _, m in bus.sent]
    assert kinds == ["StoryIntegrated", "MergeConflict"]
    rerun = bus.sent[1][1]
    assert isinstance(rerun, s.MergeConflict) and rerun.integration_bundle is not None


async def test_a_batch_whose_only_story_is_to_run_again_names_the_head_it_met_with_a_bundle(
    bench: Any, merger: tuple[Merger, Recorded]
) -> None:
    """The batches before may have written no bundle (nothing was to start after them):
    the story's re-run starts from the head it conflicted with, so that head is answered
    with its bundle even though nothing of the batch was integrated."""
    service, bus = merger
    prepared = await bench.prepare(RUN, bench.make_repo("user", FILES))
    quiet = await batch_of(bench, bus, prepared.repo, prepared.base, {"S1": {"a.py": "A = 1\n"}})
    await service.integrate(msgspec.structs.replace(quiet, head_bundle=False))
    ((_, done),) = bus.sent
    assert isinstance(done, s.StoryIntegrated) and done.integration_bundle is None

    bus.sent.clear()
    clash = await batch_of(bench, bus, prepared.repo, prepared.base, {"S2": {"a.py": "A = 2\n"}})
    await service.integrate(msgspec.structs.replace(clash, head_bundle=False))
    ((_, rerun),) = bus.sent
    assert isinstance(rerun, s.MergeConflict)
    assert rerun.integration_head == done.integration_head
    assert rerun.integration_bundle is not None
    bundle = bench.root / "head.bundle"
    await bus.get_file(rerun.integration_bundle, bundle)
    heads = bench.git(prepared.repo, "bundle", "list-heads", str(bundle))
    assert done.integration_head in heads


async def test_a_batch_of_a_run_never_prepared_fails_each_story_with_the_reason(
    bench: Any, merger: tuple[Merger, Recorded]
) -> None:
    service, bus = merger
    junk = bench.root / "junk.bundle"
    junk.write_bytes(b"not a bundle\n")
    await bus.put_file("runs/never/results/S1.bundle", junk)
    items = [
        s.StoryToIntegrate(
            story=s.Story(id=story_id, title=story_id),
            attempt=1,
            bundle="runs/never/results/S1.bundle",
            story_base="0" * 40,
            head_commit="1" * 40,
        )
        for story_id in ("S1", "S2")
    ]
    await service.integrate(s.IntegrateStories(run_id="never", stories=items, goal=GOAL))
    assert [(mid, type(m).__name__) for mid, m in bus.sent] == [
        ("never.integration_failed.S1.1", "IntegrationFailed"),
        ("never.integration_failed.S2.1", "IntegrationFailed"),
    ]
    assert all("has no integration repository" in m.error for _, m in bus.sent)  # type: ignore[union-attr]
