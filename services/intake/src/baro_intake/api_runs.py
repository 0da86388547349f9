"""What the API does on the bus: read run records, submit, confirm, cancel (a run's events
come from ``baro_shared.runstream``, as for every other view of a run).

Submitting a run is publishing RunSubmitted, as the CLI does; the conductor creates the
record. Only the conductor writes records, so confirming and cancelling are events too.
Every message id is the one the CLI uses for the same act, so an API call and a CLI
command racing for the same run are deduplicated by the server: the first one wins.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import msgspec
from nats.js.errors import NotFoundError

from baro_intake.api_views import pending_record
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus


class Conflict(Exception):
    """The run is not in a state that allows the request (HTTP 409)."""


async def lookup(bus: Bus, run_id: str) -> s.RunRecord | None:
    """The run's record, or the record it will get when only its RunSubmitted exists."""
    got = await bus.get_record(run_id)
    if got is not None:
        return got[0]
    submitted = await submitted_event(bus, run_id)
    return pending_record(submitted) if submitted is not None else None


async def submitted_event(bus: Bus, run_id: str) -> s.RunSubmitted | None:
    try:
        raw = await bus.js.get_last_msg(t.EVT_STREAM, t.evt_subject(run_id, "submitted"))
    except NotFoundError:
        return None
    if raw.data is None:
        return None
    try:
        event = s.event_decoder.decode(raw.data)
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, s.RunSubmitted) else None


async def list_runs(bus: Bus, state: str | None, limit: int) -> list[s.RunRecord]:
    records = await bus.list_records()
    if state is not None:
        records = [r for r in records if r.state == state]
    records.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return records[:limit]


async def submit(bus: Bus, request: s.RunSubmitted) -> None:
    await bus.publish(request, f"{request.run_id}.submitted")


async def bundle_exists(bus: Bus, name: str) -> bool:
    try:
        info = await bus.objects.get_info(name)
    except NotFoundError:
        return False
    return not info.deleted


@dataclass(frozen=True)
class Confirmed:
    mode: s.Mode
    source: s.ConfirmSource


async def confirm_mode(bus: Bus, rec: s.RunRecord, mode: s.Mode | None) -> Confirmed:
    """Confirm intake's suggestion (``mode`` None or equal to it) or override it."""
    if rec.state != "awaiting_confirmation" or rec.decision is None:
        raise Conflict(
            f"run {rec.run_id} is {rec.state}, not awaiting_confirmation: only a run "
            "submitted with confirm 'picker' waits for its mode, until it is confirmed"
        )
    chosen = mode or rec.decision.mode
    source: s.ConfirmSource = "intake" if chosen == rec.decision.mode else "user"
    decided_by: s.DecisionSource = rec.decision.source if source == "intake" else "user"
    fresh = await bus.publish(
        s.ModeConfirmed(run_id=rec.run_id, mode=chosen, source=source, decided_by=decided_by),
        f"{rec.run_id}.mode",
    )
    if not fresh:
        raise Conflict(f"the mode of run {rec.run_id} was already confirmed")
    return Confirmed(chosen, source)


async def answer(bus: Bus, rec: s.RunRecord, answers: list[s.GivenAnswer], by: str) -> None:
    """Answer a run's questions (``baro answer`` and ``baro run`` at a terminal do the same,
    under the same message id: the first answers win)."""
    clarification = rec.clarification
    if rec.state != "awaiting_answers" or clarification is None:
        raise Conflict(
            f"run {rec.run_id} is {rec.state}, not awaiting_answers: only a run submitted "
            "with clarify 'ask' whose goal raised questions waits for answers"
        )
    known = {q.id for q in clarification.questions}
    unknown = sorted({a.question_id for a in answers} - known)
    if unknown:
        raise UnknownQuestion(
            f"run {rec.run_id} has no question {unknown[0]!r}: its questions are "
            + ", ".join(sorted(known))
        )
    fresh = await bus.publish(
        s.AnswersGiven(run_id=rec.run_id, answers=answers, by=by), f"{rec.run_id}.answers"
    )
    if not fresh:
        raise Conflict(f"the questions of run {rec.run_id} were already answered")


class UnknownQuestion(ValueError):
    """An answer to a question the run did not ask (HTTP 422)."""


async def cancel(bus: Bus, rec: s.RunRecord, reason: str) -> None:
    if rec.state in s.TERMINAL_RUN_STATES:
        raise Conflict(f"run {rec.run_id} is already {rec.state}: there is nothing to cancel")
    await bus.publish(s.CancelRequested(run_id=rec.run_id, reason=reason), f"{rec.run_id}.cancel")
    with contextlib.suppress(Exception):  # runners also see it on the record; this is faster
        await bus.nc.publish(t.cancel_subject(rec.run_id), b"")
        await bus.nc.flush()
