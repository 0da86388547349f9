"""Which finished runs a machine forgets: the choice alone, over plain records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from baro_shared import retention
from baro_shared import schemas as s

RUN_IDS = st.text("abcdef0123456789", min_size=1, max_size=6)


@given(
    st.dictionaries(RUN_IDS, st.floats(0, 1e9, allow_nan=False), max_size=30), st.integers(0, 40)
)
def test_the_newest_keep_runs_stay_and_every_older_one_goes(
    finished: dict[str, float], keep: int
) -> None:
    doomed = retention.beyond(finished, keep)
    stay = set(finished) - set(doomed)
    assert len(stay) == min(keep, len(finished))
    assert all(finished[old] <= finished[new] for old in doomed for new in stay)
    assert [finished[r] for r in doomed] == sorted(finished[r] for r in doomed), "oldest first"


class Records:
    def __init__(self, records: list[s.RunRecord]) -> None:
        self.records = {r.run_id: r for r in records}
        self.read: list[str] = []

    async def get_record(self, run_id: str) -> tuple[s.RunRecord, int] | None:
        self.read.append(run_id)
        found = self.records.get(run_id)
        return (found, 1) if found else None


def record(run_id: str, state: str, finished_at: float | None) -> s.RunRecord:
    request = s.RunSubmitted(
        run_id=run_id, goal="g", repo=s.RepoSource(kind="path", location="/nowhere")
    )
    return s.RunRecord(run_id=run_id, request=request, state=state, finished_at=finished_at)  # type: ignore[arg-type]


async def test_runs_not_finished_or_unknown_are_never_forgotten() -> None:
    records = Records(
        [
            record("old-delivered", "delivered", 1.0),
            record("old-failed", "needs_attention", 2.0),
            record("still-running", "running", None),
            record("newest", "delivered", 9.0),
            record("current", "submitted", None),
        ]
    )
    ids = ["old-delivered", "old-failed", "still-running", "no-record", "newest", "current"]
    doomed = await retention.to_forget(records, ids, 1, current="current")
    assert [r.run_id for r in doomed] == ["old-delivered", "old-failed"]
    assert "current" not in records.read


async def test_nothing_is_read_while_there_are_no_more_runs_than_kept() -> None:
    records = Records([record("a", "delivered", 1.0)])
    assert await retention.to_forget(records, ["a", "b"], 2, current="c") == []
    assert records.read == []
