"""The web dashboard in a real browser (headless Chromium) against a live stack: sign in,
watch a four-story parallel scripted run from its mode decision to its delivery, with the
plan drawn as a graph, a Gantt bar per attempt and the delivered branch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TOKEN, Api, bare_remote, run_body, wait_for_state

pytestmark = pytest.mark.slow

NAMES = ("alpha", "beta", "gamma", "delta")
FILES = {f"{name}.py": f"{name.upper()} = 1\n" for name in NAMES} | {"README.md": "# four\n"}
GOAL = "update alpha.py, beta.py, gamma.py and delta.py: add a module docstring to each"
SCRIPT = {
    "stories": [
        {
            "match": {"title": rf"\b{name}\.py\b"},
            "steps": [
                {"text": f"working on {name}.py"},
                {"sleep": 1.5},
                {"write": f"{name}.py", "content": f'"""{name}."""\n{name.upper()} = 1\n'},
                {"usage": {"input": 300, "cached": 100, "output": 30, "cost_usd": 0.0125}},
            ],
        }
        for name in NAMES
    ]
}
# what the page showed as the run's state, each change once, in order
RECORD_PHASES = """
window.shownPhases = [];
new MutationObserver(() => {
  const el = document.getElementById("phase");
  const phase = el && el.dataset.phase;
  if (phase && window.shownPhases[window.shownPhases.length - 1] !== phase) {
    window.shownPhases.push(phase);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


async def test_sign_in_and_watch_a_parallel_run_to_its_branch(
    api: Api, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    bare, _ = bare_remote(tmp_path, FILES)
    page = await browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.add_init_script(RECORD_PHASES)

    # signing in: a wrong token is refused on the page, the right one opens the runs
    await page.goto(f"{api.url}/ui")
    await page.wait_for_selector("#login:not([hidden])")
    await page.fill("#token", "not-the-token")
    await page.click("#login-form button")
    await page.wait_for_selector("#login-error:has-text('not the API')")
    await page.fill("#token", TOKEN)
    await page.click("#login-form button")
    await page.wait_for_selector("#runs:not([hidden])")
    await page.screenshot(path=artifacts / "1-runs.png")
    await page.evaluate("window.sameDocument = true")  # gone if a link loads a new page

    # the run waits for its mode to be confirmed: the page is open before it is planned
    body = run_body(f"file://{bare}", GOAL, confirm="picker", agent_script=SCRIPT)
    body["limits"]["parallelism"] = 4
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    await wait_for_state(api.client, run_id, {"awaiting_confirmation"})
    row = page.locator(f"tr[data-run='{run_id}'] a")
    await row.wait_for(timeout=20_000)  # the list refreshes itself
    assert await page.locator("#run-rows").get_attribute("data-source") == "events"
    await row.click()
    await page.wait_for_selector("#phase[data-phase='awaiting_confirmation']")
    assert await page.evaluate("window.sameDocument === true"), "the run opens in the page"
    assert await page.evaluate("sessionStorage.length") == 1, "the token is kept in the tab"

    confirmed = await api.client.post(f"/v1/runs/{run_id}/mode", json={"mode": "parallel"})
    assert confirmed.status_code == 202, confirmed.text

    # live: four stories drawn, running side by side
    await page.locator("#dag .node").nth(3).wait_for(timeout=60_000)
    await page.wait_for_selector("#dag .node[data-status='running']", timeout=60_000)
    await page.screenshot(path=artifacts / "2-running.png", full_page=True)
    await page.wait_for_selector("#phase[data-phase='delivered']", timeout=120_000)
    await page.screenshot(path=artifacts / "3-delivered.png", full_page=True)

    run = await wait_for_state(api.client, run_id, {"delivered"})
    phases = await page.evaluate("window.shownPhases")
    assert phases[0] == "awaiting_confirmation" and phases[-1] == "delivered", phases
    assert "running" in phases, phases
    assert await page.locator("#dag .node[data-status='integrated']").count() == 4
    assert await page.locator("#dag .node").count() == 4
    mode = run["mode"]
    assert await page.locator("#mode").inner_text() == (
        f"parallel ({mode['source']}): {mode['reason']}"
    )
    # a Gantt bar for every attempt, the four overlapping in time
    # read at once: an event arriving after "delivered" (the run's end) draws the chart again
    spans = await page.evaluate(
        """[...document.querySelectorAll('#gantt .bar.success')].map((bar) => {
            const box = bar.getBoundingClientRect();
            return [box.left, box.right];
        })"""
    )
    assert len(spans) == 4 and all(end - start > 2 for start, end in spans), spans
    assert max(start for start, _ in spans) < min(end for _, end in spans), "side by side"
    assert "speedup" in await page.locator("#gantt .axis").inner_text()
    # the branch the run delivered, the agents' own words, the figures of the record
    assert await page.locator("#branch").inner_text() == run["delivered"]["branch"]
    tails = await page.locator("#tails pre").all_text_contents()
    assert all(any(f"working on {n}.py" in t for t in tails) for n in NAMES), tails
    tokens = run["totals"]["tokens"]
    assert await page.locator("#tokens").inner_text() == f"{tokens['input']} / {tokens['output']}"
    assert tokens["cost_usd"] == pytest.approx(0.05)  # four stories at $0.0125
    assert await page.locator("#cost").inner_text() == "$0.0500"
    assert await page.locator("#story-rows tr").count() == 4
    assert errors == []

    # the list shows it delivered, with its tokens; logging out forgets the token
    await page.click(".brand")
    listed = page.locator(f"tr[data-run='{run_id}']")
    await listed.wait_for()
    assert "delivered" in await listed.inner_text()
    assert f"{tokens['input']} / {tokens['output']}" in await listed.inner_text()
    assert "$0.0500" in await listed.inner_text()
    assert await page.evaluate("window.sameDocument === true")
    await page.go_back()  # the browser's own history goes back to the run
    await page.wait_for_selector("#phase[data-phase='delivered']")
    await page.click("#logout")
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.evaluate("sessionStorage.length") == 0


async def test_the_page_is_served_without_data_under_a_strict_policy(api: Api) -> None:
    """The page and its assets need no token and hold no data; /v1 still needs it."""
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        moved = await anonymous.get("/ui")
        assert moved.status_code == 308 and moved.headers["location"] == "ui/"
        page = await anonymous.get("/ui/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "http" not in page.text, "every URL of the page is its own server's"
        for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
            asset = await anonymous.get(f"/ui/assets/{name}")
            assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert (await anonymous.get("/ui/assets/..%2fapi.py")).status_code == 404
        assert (await anonymous.get("/ui/assets/nothing.js")).status_code == 404
        assert (await anonymous.get("/v1/runs")).status_code == 401


async def test_a_run_s_questions_are_answered_on_the_page(
    api: Api, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    bare, _ = bare_remote(tmp_path)
    page = await browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{api.url}/ui")
    await page.fill("#token", TOKEN)
    await page.click("#login-form button")
    await page.wait_for_selector("#runs:not([hidden])")

    body = run_body(f"file://{bare}", "make it faster", clarify="ask")
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    await wait_for_state(api.client, run_id, {"awaiting_answers"})
    await page.goto(f"{api.url}/ui/?run={run_id}")
    await page.wait_for_selector("#phase[data-phase='awaiting_answers']")
    assert await page.locator("#questions input").count() == 3
    assert "Which file, module, command or feature" in await page.inner_text("#questions")
    await page.fill("#answer-target", "greet() in app.py")
    await page.fill("#answer-outcome", "it says hello")
    await page.screenshot(path=artifacts / "1-questions.png", full_page=True)
    await page.click("#send-answers")

    await page.wait_for_selector("#phase[data-phase='delivered']", timeout=120_000)
    await page.screenshot(path=artifacts / "2-delivered.png", full_page=True)
    assert await page.locator("#questions input").count() == 0
    answered = await page.inner_text("#questions")
    assert "greet() in app.py" in answered and "(not answered)" in answered
    agreed = await page.inner_text("#agreed")
    assert "make it faster — greet() in app.py" in agreed and "it says hello" in agreed
    run = await wait_for_state(api.client, run_id, {"delivered"})
    assert run["clarification"]["answered_by"] == "api"
    assert errors == []
