// baro's dashboard: the runs, and one run followed live through its server-sent events.
// Everything comes from the API (/v1) with the token typed into the login form; nothing an
// agent wrote is ever parsed as HTML (text nodes only).
"use strict";

const TOKEN_KEY = "baro.api-token";
const TAIL_KEPT = 40;
const LIST_REFRESH_MS = 5000; // asking again only where the API has no live list stream
const LIST_EVENTS_MS = 1000; // at most one fetch of the list a second, however busy the bus
const API = new URL("../", location.href); // /ui/ is served next to /v1, prefix and all

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== undefined && child !== null) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

// ------------------------------------------------------------------ the API

class Unauthorized extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function call(path, init) {
  const headers = { Authorization: `Bearer ${token() || ""}`, ...((init && init.headers) || {}) };
  const resp = await fetch(new URL(path, API), { ...(init || {}), headers, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized();
  return resp;
}

async function getJson(path, signal) {
  const resp = await call(path, signal ? { signal } : undefined);
  if (!resp.ok) {
    let message = `${resp.status}`;
    try {
      message = (await resp.json()).error || message;
    } catch (_) {
      /* not JSON: the status says it */
    }
    throw new Error(message);
  }
  return resp.json();
}

// ------------------------------------------------------------------ formatting

function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function count(n) {
  return n === null || n === undefined ? "?" : String(n);
}

function tokens(t) {
  return t ? `${count(t.input)} / ${count(t.output)}` : "";
}

function dollars(c) {
  return c === null || c === undefined ? "—" : `$${c.toFixed(4)}`;
}

function addTokens(a, b) {
  const sum = {};
  for (const key of ["input", "cached_input", "output", "reasoning"]) {
    const x = a ? a[key] : undefined;
    const y = b ? b[key] : undefined;
    sum[key] = x === undefined || x === null ? y : y === undefined || y === null ? x : x + y;
  }
  return sum;
}

function flat(text, limit = 300) {
  const one = String(text || "").split(/\s+/).join(" ").trim();
  return one.length <= limit ? one : `${one.slice(0, limit - 1)}…`;
}

function agentAction(e) {
  switch (e.kind) {
    case "session": return `session ${e.session_id}${e.model ? ` (${e.model})` : ""}`;
    case "text": return `text: ${flat(e.text)}`;
    case "thinking": return `thinking: ${flat(e.text)}`;
    case "tool_started": return `tool ${e.name} started: ${flat(e.input)}`;
    case "tool_finished": return `tool ${e.name || "?"} ${e.ok === false ? "failed" : "ok"}: ${flat(e.output)}`;
    case "file_changed": return `file ${e.change || "unknown"}: ${e.path}`;
    case "command": return `command ${flat(e.command)} -> exit ${e.exit_code ?? "?"}`;
    case "usage": return `tokens in ${count(e.usage.input)} out ${count(e.usage.output)}${e.cost_usd != null ? `, ${dollars(e.cost_usd)}` : ""}`;
    case "error": return `error${e.status ? ` ${e.status}` : ""}: ${flat(e.message)}`;
    case "finished": return e.ok ? "finished: ok" : `finished: failed: ${flat(e.error)}`;
    default: return e.kind;
  }
}

// ------------------------------------------------------------------ pages

function show(section) {
  for (const id of ["login", "runs", "run"]) $(id).hidden = id !== section;
  $("logout").hidden = section === "login";
}

function login(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  show("login");
  $("where").textContent = "";
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function start() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    try {
      await getJson("v1/runs?limit=1");
    } catch (err) {
      login(err instanceof Unauthorized ? "That token is not the API's: try again." : err.message);
      return;
    }
    route();
  });
  $("logout").addEventListener("click", () => login(""));
  if (!token()) {
    login("");
    return;
  }
  route();
}

// one page at a time: going to another (a link, back, forward) stops the one shown, its
// streams and timers, without loading the document again
let shown = new AbortController();

function route() {
  shown.abort();
  shown = new AbortController();
  const signal = shown.signal;
  const run = new URLSearchParams(location.search).get("run");
  const page = run ? followRun(run, signal) : listRuns(signal);
  page.catch((err) => {
    if (signal.aborted) return;
    if (err instanceof Unauthorized) login("The API refused the token: sign in again.");
    else $(run ? "stream-note" : "where").textContent = err.message;
  });
}

function go(href) {
  history.pushState(null, "", href);
  route();
}

document.addEventListener("click", (ev) => {
  const link = ev.target instanceof Element ? ev.target.closest("a[data-page]") : null;
  if (!link || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  go(link.getAttribute("href"));
});
window.addEventListener("popstate", route);

// ------------------------------------------------------------------ the runs

// The list is fetched once, then again when the bus says a run changed (GET /v1/events),
// at most once a second; only where that stream is missing is it asked for every few
// seconds. The ages tick without asking anything.
async function listRuns(signal) {
  show("runs");
  $("where").textContent = "runs";
  // the rows drawn the last time the list was shown are out of date: none until fetched
  $("run-rows").replaceChildren();
  delete $("run-rows").dataset.source;
  $("runs-empty").hidden = true;
  let runs = [];
  let stale = true;
  let live = false;
  const draw = () => {
    const now = Date.now() / 1000;
    const rows = runs.map((r) =>
      el("tr", { "data-run": r.run_id },
        el("td", {}, el("a", { href: `?run=${encodeURIComponent(r.run_id)}`, "data-page": "run" }, r.run_id)),
        el("td", {}, flat(r.goal, 100)),
        el("td", {}, el("span", { class: `state ${r.state}` }, r.state.replace("_", " "))),
        el("td", {}, r.mode || ""),
        el("td", {}, seconds(now - r.created_at)),
        el("td", {}, tokens(r.tokens)),
        el("td", {}, dollars(r.tokens.cost_usd))));
    $("run-rows").replaceChildren(...rows);
    $("run-rows").dataset.source = live ? "events" : "polling";
    $("runs-empty").hidden = runs.length > 0;
  };
  let wake = () => {};
  const changes = changesOfRuns(signal, () => { stale = true; wake(); }, (ok) => { live = ok; });
  changes.catch(() => { live = false; });
  let fetched = -Infinity;
  while (!signal.aborted) {
    if (stale) {
      const wait = fetched + LIST_EVENTS_MS - performance.now();
      if (wait > 0) await sleep(wait); // changes come in bursts: one fetch for a burst
      stale = false;
      fetched = performance.now();
      ({ runs } = await getJson("v1/runs?limit=200", signal));
    }
    if (signal.aborted) return;
    draw();
    if (stale) continue;
    await Promise.race([sleep(LIST_REFRESH_MS), new Promise((done) => { wake = done; })]);
    if (!live) stale = true;
  }
}

// GET /v1/events: ``changed()`` for every event of any run, ``connected(ok)`` as the
// stream comes and goes
async function changesOfRuns(signal, changed, connected) {
  while (!signal.aborted) {
    let resp;
    try {
      resp = await call("v1/events", { signal });
    } catch (err) {
      if (signal.aborted || err instanceof Unauthorized) throw err;
      connected(false);
      await sleep(3000);
      continue;
    }
    if (!resp.ok) {
      connected(false);
      return; // an API without the stream: the list asks again every few seconds
    }
    connected(true);
    changed(); // what happened while it was not connected
    try {
      await readEvents(resp, () => changed());
    } catch (_) {
      /* the connection broke: take it up again below */
    }
    connected(false);
    if (!signal.aborted) await sleep(1000);
  }
}

// server-sent events read with fetch (EventSource cannot send the bearer token): every
// message as {id, event, data}, to ``take``, until the response ends
async function readEvents(resp, take) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { data: [] };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon === 0) continue; // a comment: keepalive
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") message.id = text;
        else if (field === "event") message.event = text;
        else if (field === "data") message.data.push(text);
      }
      if (message.data.length) take({ id: message.id, event: message.event, data: JSON.parse(message.data.join("\n")) });
    }
  }
}

// ------------------------------------------------------------------ one run

class RunView {
  constructor(detail) {
    this.id = detail.run_id;
    this.goal = detail.goal;
    this.phase = detail.state;
    this.reason = detail.reason;
    this.created = detail.created_at;
    this.finishedAt = detail.finished_at;
    this.mode = detail.mode.mode || detail.mode.suggested;
    this.modeReason = detail.mode.reason;
    this.modeSource = detail.mode.source;
    this.enforcement = detail.enforcement.slice();
    this.totals = detail.finished_at ? detail.totals : null;
    this.delivered = detail.delivered;
    this.dropped = new Set((detail.delivered && detail.delivered.dropped_artifacts) || []);
    this.stories = new Map();
    for (const st of detail.stories) {
      const story = this.story(st.id);
      Object.assign(story, {
        title: st.title, deps: st.depends_on, status: st.status, attempt: st.attempt,
        done: st.tokens, outside: st.surface_violations, refused: st.refused.length,
      });
      for (const path of st.dropped_artifacts) this.dropped.add(path);
    }
    this.clarification = detail.clarification;
    this.envelope = detail.envelope;
    this.cost = null;
    this.latest = detail.updated_at;
  }

  story(id) {
    if (!this.stories.has(id)) {
      this.stories.set(id, {
        id, title: "", deps: [], status: "pending", attempt: 0, attempts: new Map(),
        done: {}, running: {}, cost: null, last: "", tail: [], outside: [], refused: 0,
      });
    }
    return this.stories.get(id);
  }

  attempt(story, n) {
    if (!story.attempts.has(n)) story.attempts.set(n, { n, start: null, end: null, status: null });
    return story.attempts.get(n);
  }

  apply(ev) {
    this.latest = Math.max(this.latest || 0, ev.ts || 0);
    switch (ev.type) {
      case "run.submitted":
        this.created = ev.ts;
        this.goal = ev.goal;
        break;
      case "run.questions_asked":
        this.phase = "awaiting_answers";
        this.clarification = { status: "asked", questions: ev.questions, answers: [] };
        break;
      case "run.answers_given":
        this.phase = "classifying";
        if (this.clarification) {
          this.clarification = { ...this.clarification, status: "answered", answers: ev.answers };
        }
        break;
      case "run.intake_decided":
        if (ev.decision.envelope) this.envelope = ev.decision.envelope;
        this.mode = ev.decision.mode;
        this.modeReason = ev.decision.reason;
        this.modeSource = ev.decision.source;
        break;
      case "run.mode_confirmed":
        this.phase = "planning";
        this.mode = ev.mode;
        if (ev.decided_by) this.modeSource = ev.decided_by;
        break;
      case "run.plan_accepted":
        this.phase = "running";
        this.mode = ev.mode;
        this.enforcement = ev.enforcement || [];
        for (const s of ev.stories) {
          const story = this.story(s.id);
          story.title = s.title;
          story.deps = s.depends_on || [];
        }
        break;
      case "story.started": {
        const story = this.story(ev.story_id);
        story.status = "running";
        story.attempt = Math.max(story.attempt, ev.attempt);
        story.running = {};
        const a = this.attempt(story, ev.attempt);
        a.start = ev.ts;
        a.end = null;
        break;
      }
      case "story.finished": {
        const story = this.story(ev.story_id);
        const a = this.attempt(story, ev.attempt);
        a.end = ev.ts;
        a.status = ev.status;
        if (a.start === null) a.start = ev.ts - (ev.agent_seconds || 0);
        if (!a.counted) {
          story.done = addTokens(story.done, ev.tokens);
          a.counted = true;
        }
        story.running = {};
        story.status = ev.status === "success" ? "finished" : ev.status;
        if (ev.error) story.last = `${ev.status}: ${flat(ev.error)}`;
        break;
      }
      case "story.updated": {
        const story = this.story(ev.story_id);
        story.status = ev.status;
        story.attempt = Math.max(story.attempt, ev.attempt || 0);
        break;
      }
      case "story.integrated": {
        const story = this.story(ev.story_id);
        story.status = "integrated";
        story.outside = ev.surface_violations || [];
        story.refused = (ev.refused || []).length;
        for (const path of ev.dropped_artifacts || []) this.dropped.add(path);
        if (this.phase === "running") this.phase = "integrating";
        break;
      }
      case "story.rejected": {
        const story = this.story(ev.story_id);
        story.outside = ev.surface_violations || [];
        story.refused = (ev.refused || []).length;
        story.rejected = true;
        break;
      }
      case "story.merge_conflict":
        this.story(ev.story_id).last = `conflict in ${(ev.paths || []).join(", ")}`;
        break;
      case "run.delivered":
        this.phase = "delivered";
        this.delivered = ev;
        for (const path of ev.dropped_artifacts || []) this.dropped.add(path);
        break;
      case "run.interrupted":
        this.phase = "interrupted";
        this.reason = ev.reason;
        break;
      case "run.resumed":
        this.phase = "running";
        break;
      case "run.finished":
        this.phase = ev.status;
        this.reason = ev.reason;
        this.totals = ev.totals;
        this.finishedAt = ev.ts;
        break;
      case "agent.event":
        this.agentEvent(ev);
        break;
      default:
        break;
    }
  }

  agentEvent(msg) {
    const story = this.story(msg.story_id);
    const line = `#${msg.attempt} ${new Date(msg.ts * 1000).toLocaleTimeString()}  ${agentAction(msg.event)}`;
    story.tail.push(line);
    if (story.tail.length > TAIL_KEPT) story.tail.shift();
    if (msg.attempt < story.attempt) return; // a superseded attempt's late events
    if (msg.event.kind === "usage") {
      story.running = addTokens(story.running, msg.event.usage);
      if (msg.event.cost_usd != null) {
        story.cost = (story.cost || 0) + msg.event.cost_usd;
        this.cost = (this.cost || 0) + msg.event.cost_usd;
      }
    } else {
      story.last = agentAction(msg.event);
    }
  }

  now() {
    return this.finishedAt || Math.max(Date.now() / 1000, this.latest || 0);
  }

  agentSeconds() {
    let total = 0;
    for (const story of this.stories.values()) {
      for (const a of story.attempts.values()) {
        if (a.start !== null) total += (a.end || this.now()) - a.start;
      }
    }
    return total;
  }

  spent() {
    if (this.totals) return this.totals.tokens;
    let sum = {};
    for (const story of this.stories.values()) sum = addTokens(sum, addTokens(story.done, story.running));
    return sum;
  }
}

// the stories by depth (a story one column right of everything it depends on)
function layers(view) {
  const depth = new Map();
  const visiting = new Set();
  const deepest = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle is the planner's to refuse: draw, don't hang
    visiting.add(id);
    const story = view.stories.get(id);
    const deps = story ? story.deps.filter((d) => view.stories.has(d)) : [];
    const d = deps.length ? 1 + Math.max(...deps.map(deepest)) : 0;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const id of view.stories.keys()) {
    const d = deepest(id);
    (columns[d] = columns[d] || []).push(id);
  }
  return columns.map((c) => c || []);
}

const PLAN_DRAWN = "baro:plan-drawn";
const NODE_W = 150;
const NODE_H = 34;
const GAP_X = 60;
const GAP_Y = 12;

function drawDag(view) {
  const root = $("dag");
  const shape = [...view.stories.values()].map((s) => `${s.id}:${s.status}:${s.deps}`).join(" ");
  if (root.dataset.shape === shape) return; // nothing to draw again
  root.dataset.shape = shape;
  const columns = layers(view);
  const where = new Map();
  columns.forEach((ids, col) => ids.forEach((id, row) => where.set(id, {
    x: 10 + col * (NODE_W + GAP_X), y: 10 + row * (NODE_H + GAP_Y),
  })));
  const rows = Math.max(1, ...columns.map((c) => c.length));
  root.setAttribute("width", String(20 + Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X));
  root.setAttribute("height", String(20 + rows * (NODE_H + GAP_Y) - GAP_Y));
  const parts = [];
  for (const story of view.stories.values()) {
    const to = where.get(story.id);
    for (const dep of story.deps) {
      const from = where.get(dep);
      if (!from) continue;
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      parts.push(svg("path", {
        class: "edge", "data-from": dep, "data-to": story.id,
        d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      }));
    }
  }
  for (const story of view.stories.values()) {
    const at = where.get(story.id);
    const g = svg("g", { class: "node", "data-story": story.id, "data-status": story.status,
      transform: `translate(${at.x},${at.y})` });
    const title = svg("title", {});
    title.textContent = `${story.id} ${story.title} (${story.status})`;
    const label = svg("text", { x: "8", y: "21" });
    label.textContent = `${story.id} · ${story.status}`;
    g.append(svg("rect", { width: String(NODE_W), height: String(NODE_H) }), label, title);
    parts.push(g);
  }
  root.replaceChildren(...parts);
  if (view.stories.size && !performance.getEntriesByName(PLAN_DRAWN).length) {
    performance.mark(PLAN_DRAWN); // when the plan was first on screen: for profiling
  }
}

function drawGantt(view) {
  const from = view.created;
  const to = Math.max(view.now(), from + 1);
  const span = to - from;
  const rows = [];
  for (const story of view.stories.values()) {
    const lane = el("div", { class: "lane" });
    for (const a of story.attempts.values()) {
      if (a.start === null) continue;
      const end = a.end || view.now();
      const bar = el("div", {
        class: `bar ${a.status || "running"}`, "data-story": story.id, "data-attempt": String(a.n),
        title: `${story.id} attempt ${a.n}: ${seconds(end - a.start)}${a.status ? ` (${a.status})` : ""}`,
      });
      bar.style.left = `${(100 * (a.start - from)) / span}%`;
      bar.style.width = `${(100 * (end - a.start)) / span}%`;
      lane.append(bar);
    }
    rows.push(el("div", { class: "row" }, el("span", {}, story.id), lane));
  }
  const wall = view.totals ? view.totals.wall_s : view.now() - view.created;
  const agent = view.totals ? view.totals.agent_s : view.agentSeconds();
  const speedup = view.totals && view.totals.speedup != null ? view.totals.speedup : (wall > 0 ? agent / wall : null);
  rows.push(el("div", { class: "axis" },
    `0s … ${seconds(span)} · wall-clock ${seconds(wall)} · agent time ${seconds(agent)}` +
    (speedup ? ` · speedup ${speedup.toFixed(2)}×` : "")));
  $("gantt").replaceChildren(...rows);
}

function drawFacts(view) {
  $("where").textContent = view.id;
  $("run-id").textContent = view.id;
  $("phase").textContent = view.phase.replace("_", " ");
  $("phase").className = `state ${view.phase}`;
  $("phase").dataset.phase = view.phase;
  $("goal").textContent = view.goal;
  $("mode").textContent = view.mode
    ? `${view.mode}${view.modeSource ? ` (${view.modeSource})` : ""}${view.modeReason ? `: ${view.modeReason}` : ""}`
    : "deciding";
  const wall = view.totals ? view.totals.wall_s : view.now() - view.created;
  const agent = view.totals ? view.totals.agent_s : view.agentSeconds();
  $("wall").textContent = seconds(wall);
  $("agent-time").textContent = seconds(agent);
  const speedup = view.totals ? view.totals.speedup : null;
  $("speedup").textContent = speedup ? `${speedup.toFixed(2)}×` : "";
  $("tokens").textContent = tokens(view.spent());
  $("cost").textContent = dollars(view.totals ? view.totals.tokens.cost_usd : view.cost);
  const d = view.delivered;
  const delivered = [];
  if (d) {
    delivered.push(el("span", { id: "branch" }, d.branch || "(no branch)"));
    delivered.push(` · ${d.commits} commit(s), ${(d.files_changed || []).length} file(s), ${d.published}`);
    if (d.pr_url && /^https?:\/\//.test(d.pr_url)) {
      delivered.push(" · ", el("a", { href: d.pr_url, rel: "noreferrer" }, d.pr_url));
    }
    if (d.publish_note) delivered.push(` · ${d.publish_note}`);
  }
  $("delivered").replaceChildren(...delivered);
  $("reason").textContent = view.reason || "";
}

// the run's questions: a form while it waits for answers, then what was answered and the
// goal the answers made
function drawClarification(view) {
  const found = view.clarification;
  $("clarify").hidden = !found || !found.questions.length;
  if ($("clarify").hidden) return;
  const asking = found.status === "asked" && view.phase === "awaiting_answers";
  $("clarify-status").textContent = found.status.replace("_", " ");
  $("send-answers").hidden = !asking;
  const key = `${asking}:${found.status}:${found.questions.map((q) => q.id).join(",")}`;
  if ($("questions").dataset.key !== key) {
    // drawn once per state: a redraw must not wipe what is being typed
    $("questions").dataset.key = key;
    const given = new Map((found.answers || []).map((a) => [a.question_id, a.text || ""]));
    $("questions").replaceChildren(...found.questions.map((q) => el("li", {},
      el("label", { for: `answer-${q.id}` }, q.text),
      asking
        ? el("input", { id: `answer-${q.id}`, name: q.id, type: "text", maxlength: "2000" })
        : el("div", { class: "note" }, given.get(q.id) || "(not answered)"))));
  }
  const e = view.envelope;
  const agreed = [];
  if (e) {
    agreed.push(el("p", {}, el("strong", {}, "Objective: "), e.objective));
    for (const [title, items] of [["Acceptance criteria", e.acceptance_criteria],
      ["Non-goals", e.non_goals], ["Assumptions", e.assumptions]]) {
      if (items && items.length) {
        agreed.push(el("p", {}, el("strong", {}, `${title}:`)),
          el("ul", { class: "plain" }, ...items.map((item) => el("li", {}, item))));
      }
    }
  }
  $("agreed").hidden = !e;
  $("agreed").replaceChildren(...agreed);
}

async function sendAnswers(view) {
  const answers = [...$("questions").querySelectorAll("input")].map((input) => ({
    question_id: input.name, text: input.value.trim(),
  }));
  $("answers-error").textContent = "";
  const resp = await call(`v1/runs/${encodeURIComponent(view.id)}/answers`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ answers }),
  });
  if (!resp.ok) {
    let message = `${resp.status}`;
    try {
      message = (await resp.json()).error || message;
    } catch (_) {
      /* not JSON: the status says it */
    }
    $("answers-error").textContent = message;
  }
}

function drawStories(view) {
  const now = view.now();
  const rows = [];
  for (const story of view.stories.values()) {
    const current = story.attempts.get(story.attempt);
    const elapsed = current && current.start !== null ? (current.end || now) - current.start : null;
    const surface = [];
    if (story.outside.length) {
      surface.push(`${story.outside.length} outside (${story.rejected && story.status !== "integrated" ? "rejected" : "integrated anyway"})`);
    }
    if (story.refused) surface.push(`${story.refused} refused`);
    rows.push(el("tr", { "data-story": story.id },
      el("td", {}, story.id),
      el("td", {}, story.title),
      el("td", {}, el("span", { class: `state ${story.status}` }, story.status)),
      el("td", {}, story.attempt || ""),
      el("td", {}, seconds(elapsed)),
      el("td", {}, tokens(addTokens(story.done, story.running))),
      el("td", {}, dollars(story.cost)),
      el("td", { class: "action" }, story.last),
      el("td", {}, surface.join(", ") || (story.status === "integrated" ? "ok" : ""))));
  }
  $("story-rows").replaceChildren(...rows);
  const list = (id, items) => $(id).replaceChildren(...items.map((text) => el("li", {}, text)));
  list("enforcement", view.enforcement.length ? view.enforcement : ["none"]);
  list("dropped", view.dropped.size ? [...view.dropped] : ["none"]);
  const violations = [];
  for (const story of view.stories.values()) {
    for (const path of story.outside) violations.push(`${story.id}: ${path}`);
  }
  list("violations", violations.length ? violations : ["none"]);
  const heard = [...view.stories.values()].map((s) => `${s.id}:${s.tail.length}:${s.tail[s.tail.length - 1] || ""}`).join("\n");
  if ($("tails").dataset.heard === heard) return;
  $("tails").dataset.heard = heard;
  const open = new Set([...document.querySelectorAll("#tails details[open]")].map((d) => d.dataset.story));
  $("tails").replaceChildren(...[...view.stories.values()].map((story) => el("details",
    { "data-story": story.id, ...(open.has(story.id) ? { open: "" } : {}) },
    el("summary", {}, `${story.id} (${story.tail.length} recent)`),
    el("pre", {}, story.tail.join("\n")))));
}

// at most one frame per FRAME_MS: a run's events can come dozens a second, and the
// browser shares the machine with the agents
const FRAME_MS = 250;

function drawer(view) {
  let queued = false;
  let last = 0;
  const draw = () => {
    queued = false;
    last = performance.now();
    drawFacts(view);
    drawClarification(view);
    drawDag(view);
    drawGantt(view);
    drawStories(view);
  };
  return () => {
    if (queued) return;
    queued = true;
    const wait = Math.max(0, last + FRAME_MS - performance.now());
    setTimeout(() => requestAnimationFrame(draw), wait);
  };
}

async function followRun(runId, signal) {
  show("run");
  const view = new RunView(await getJson(`v1/runs/${encodeURIComponent(runId)}`, signal));
  $("answers-form").onsubmit = (ev) => {
    ev.preventDefault();
    sendAnswers(view).catch((err) => { $("answers-error").textContent = String(err.message || err); });
  };
  const redraw = drawer(view);
  redraw();
  const ticking = setInterval(() => { if (!view.totals) redraw(); }, 1000);
  try {
    await stream(runId, view, redraw, signal);
  } finally {
    clearInterval(ticking);
  }
  if (!signal.aborted) redraw();
}

// the run's server-sent events; a lost stream is taken up again after the last id it gave
async function stream(runId, view, redraw, signal) {
  let last = null;
  let ended = false;
  let fresh = true; // the first connection replays the run from its start
  while (!signal.aborted) {
    const headers = last ? { "Last-Event-ID": last } : {};
    let resp;
    try {
      resp = await call(`v1/runs/${encodeURIComponent(runId)}/events?agent=true`, { headers, signal });
    } catch (err) {
      if (signal.aborted || err instanceof Unauthorized) throw err;
      $("stream-note").textContent = "connection lost: reconnecting…";
      await sleep(3000);
      continue;
    }
    if (!resp.ok) throw new Error(`the event stream answered ${resp.status}`);
    $("stream-note").textContent = fresh ? "" : "reconnected";
    fresh = false;
    try {
      await readEvents(resp, (message) => {
        if (message.id) last = message.id;
        view.apply(message.data);
        if (message.data.type === "run.finished") ended = true;
        redraw();
      });
    } catch (_) {
      /* the connection broke: take it up again below */
    }
    if (ended || signal.aborted) return;
    $("stream-note").textContent = "connection lost: reconnecting…";
    await sleep(1000);
  }
}

document.addEventListener("DOMContentLoaded", start);
