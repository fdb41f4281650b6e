// The review page: lists events from /api/events (newest first), draws each one's score timeline, sends
// labels, and, when the server has a live board, shows the running cameras and events as they open.
// Cards are kept by eid across refreshes, so a refresh does not restart a clip someone is watching.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const token = new URLSearchParams(location.search).get("token");
const cards = new Map();      // eid -> <li> of a listed event
const opening = new Map();    // "camera/number" -> <li> of a live event that has not closed yet
const SVG = "http://www.w3.org/2000/svg";
const LABEL_TEXT = { normal: "labelled normal (false alarm)", real: "labelled real" };
let loading = null, again = false;  // one listing at a time; a change meanwhile lists again after it

function status(text, error = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function query() {
  const p = new URLSearchParams();
  const set = (k, v) => { if (v) p.set(k, v); };
  set("camera", $("#f-camera").value);
  set("day", $("#f-day").value);
  set("min_score", $("#f-score").value);
  set("label", $("#f-label").value);
  if (!$("#f-alerts").checked) p.set("kind", "anomaly");
  return p.toString();
}

function fillSelect(sel, values) {
  const keep = sel.value;
  const have = [...sel.options].slice(1).map((o) => o.value);
  if (have.join("\n") === values.join("\n")) return;
  sel.replaceChildren(sel.options[0], ...values.map((v) => new Option(v, v)));
  sel.value = values.includes(keep) ? keep : "";
}

const fmt = (x, digits = 2) => (x === null || x === undefined ? "?" : Number(x).toFixed(digits));

function describe(card, ev) {
  $(".camera", card).textContent = ev.camera;
  $(".badge", card).textContent = ev.kind === "anomaly" ? `event ${ev.id}` : `camera alert: ${ev.reason || "?"}`;
  $(".run", card).textContent = `${ev.run_kind} · ${ev.run}`;
  const when = new Date(ev.when).toLocaleString();
  const at = ev.start_time !== null ? ` (at ${fmt(ev.start_time, 1)} s of the source)` : "";
  $(".when", card).textContent = ev.when_exact ? when + at : `${when} (file time)${at}`;
  const frames = ev.start !== null && ev.end !== null ? `${ev.end - ev.start + 1} frames` : "?";
  $(".duration", card).textContent = ev.duration !== null ? `${fmt(ev.duration, 1)} s, ${frames}` : frames;
  const peak = $(".peak", card);
  if (ev.kind !== "anomaly") peak.textContent = "—";
  else if (ev.threshold === null) peak.textContent = fmt(ev.peak_score);
  else peak.textContent = `${fmt(ev.peak_score)} against threshold ${fmt(ev.threshold)}`;
  peak.classList.toggle("over", ev.peak_score !== null && ev.threshold !== null && ev.peak_score > ev.threshold);
  showLabel(card, ev.label);
}

function showLabel(card, label) {
  card.dataset.label = label || "";
  if (!$(".feedback", card)) return;  // a camera alert takes no label
  $(".label", card).textContent = label ? LABEL_TEXT[label] : "not labelled";
  for (const b of card.querySelectorAll(".feedback button")) b.classList.toggle("chosen", b.dataset.label === label);
}

function media(card, ev) {
  const img = $(".snapshot", card), video = $(".clip", card);
  img.hidden = !ev.snapshot;
  $(".no-snapshot", card).hidden = !!ev.snapshot;
  if (ev.snapshot && img.getAttribute("src") !== ev.snapshot) img.src = ev.snapshot;
  video.hidden = !ev.clip;
  $(".no-clip", card).hidden = !!ev.clip;
  if (ev.clip && video.getAttribute("src") !== ev.clip) video.src = ev.clip;
}

function makeCard(ev) {
  const card = $("#event-tpl").content.firstElementChild.cloneNode(true);
  card.dataset.eid = ev.eid;
  card.dataset.kind = ev.kind;
  if (ev.kind !== "anomaly") {
    card.classList.add("camera-alert");
    $(".feedback", card).remove();
  } else {
    for (const b of card.querySelectorAll(".feedback button")) b.onclick = () => label(card, b.dataset.label);
  }
  timelines.observe(card);
  return card;
}

async function label(card, value) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["X-Review-Token"] = token;
  try {
    const r = await fetch(`/api/events/${card.dataset.eid}/feedback`,
      { method: "POST", headers, body: JSON.stringify({ label: value }) });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    showLabel(card, body.label);
  } catch (err) {
    $(".label", card).textContent = `not saved: ${err.message}`;
  }
}

// timelines are fetched when their card scrolls into view
const timelines = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    timelines.unobserve(e.target);
    fetch(`/api/events/${e.target.dataset.eid}/timeline`).then((r) => (r.ok ? r.json() : null))
      .then((t) => t && draw($(".timeline", e.target), t)).catch(() => {});
  }
});

function draw(svg, t) {
  svg.replaceChildren();
  const W = 300, H = 60, n = t.frames.length;
  if (!n) {
    svg.setAttribute("hidden", "");
    return;
  }
  const ys = t.threshold === null ? t.smoothed : [...t.smoothed, t.threshold];
  const lo = Math.min(...ys), hi = Math.max(...ys), f0 = t.frames[0], f1 = Math.max(t.frames[n - 1], f0 + 1);
  const x = (f) => ((f - f0) / (f1 - f0)) * W;
  const y = (v) => H - 4 - ((v - lo) / (hi - lo || 1)) * (H - 8);
  const add = (tag, attrs) => {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.appendChild(el);
  };
  if (t.start !== null && t.end !== null) {
    add("rect", { class: "span", x: x(t.start), y: 0, width: Math.max(1, x(t.end) - x(t.start)), height: H });
  }
  if (t.threshold !== null) add("line", { class: "threshold", x1: 0, x2: W, y1: y(t.threshold), y2: y(t.threshold) });
  add("polyline", { class: "score", points: t.frames.map((f, i) => `${x(f)},${y(t.smoothed[i])}`).join(" ") });
}

function load() {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    try {
      const r = await fetch(`/api/events?${query()}`);
      const data = await r.json();
      if (!r.ok) throw new Error(data.error || r.statusText);
      fillSelect($("#f-camera"), data.cameras);
      fillSelect($("#f-day"), data.days);
      const shown = data.events.map((ev) => {
        const card = cards.get(ev.eid) || makeCard(ev);
        cards.set(ev.eid, card);
        describe(card, ev);
        media(card, ev);
        return card;
      });
      for (const eid of [...cards.keys()]) if (!data.events.some((ev) => ev.eid === eid)) cards.delete(eid);
      const list = $("#events"), want = [...opening.values(), ...shown];
      if (want.length !== list.children.length || want.some((c, i) => list.children[i] !== c)) list.replaceChildren(...want);
      $("#empty").hidden = want.length > 0;
      const more = data.total > data.events.length ? ` (newest ${data.events.length} shown)` : "";
      status(`${data.total} event${data.total === 1 ? "" : "s"}${more}`);
      if (data.live) live();
    } catch (err) {
      status(`cannot list events: ${err.message}`, true);
    } finally {
      loading = null;
      if (again) {
        again = false;
        load();
      }
    }
  })();
  return loading;
}

// --- the live board (watch --review-port)

let liveStarted = false;

function live() {
  if (liveStarted) return;
  liveStarted = true;
  $("#live").hidden = false;
  refreshLive();
  setInterval(refreshLive, 2000);
  const source = new EventSource("/api/live/stream");
  source.onmessage = (m) => onMessage(JSON.parse(m.data));
}

async function refreshLive() {
  try {
    const r = await fetch("/api/live");
    if (r.ok) showCameras((await r.json()).cameras);
  } catch (err) { /* the watch ended; the list stays */ }
}

function showCameras(cams) {
  const box = $("#live-cards");
  for (const c of cams) {
    let fig = box.querySelector(`[data-camera="${CSS.escape(c.name)}"]`);
    if (!fig) {
      fig = $("#live-tpl").content.firstElementChild.cloneNode(true);
      fig.dataset.camera = c.name;
      $(".name", fig).textContent = c.name;
      box.appendChild(fig);
    }
    fig.className = `cam ${c.status}${c.problem ? " problem" : ""}`;
    const state = c.status === "open" ? (c.problem ? `camera problem: ${c.problem}` : "running")
      : `${c.status}: ${c.stopped_text || ""}${c.message ? ` (${c.message})` : ""}`;
    $(".state", fig).textContent = c.open_event ? `${state}, event open` : state;
    $(".numbers", fig).textContent =
      `${fmt(c.fps, 1)} fps · ${fmt(100 * c.drop_rate, 1)}% dropped · ${c.frames} frames · ${c.events} event${c.events === 1 ? "" : "s"}`;
    const img = $("img", fig);
    if (c.has_frame && fig.dataset.frameTime !== c.frame_time) {
      fig.dataset.frameTime = c.frame_time;
      img.src = `/api/live/${encodeURIComponent(c.name)}/frame.jpg?t=${encodeURIComponent(c.frame_time)}`;
    }
  }
}

function onMessage(m) {
  if (m.type === "status") return refreshLive();
  if (m.kind !== "anomaly") return;
  const key = `${m.camera}/${m.number}`;
  if (m.type === "end") {
    opening.delete(key);
    setTimeout(load, 500);  // the closed event's line is in events.jsonl by now
    return;
  }
  let card = opening.get(key);
  if (!card) {
    card = $("#event-tpl").content.firstElementChild.cloneNode(true);
    card.classList.add("open");
    for (const el of card.querySelectorAll(".media, .feedback, .timeline")) el.remove();
    opening.set(key, card);
    $("#events").prepend(card);
    $("#empty").hidden = true;
  }
  $(".camera", card).textContent = m.camera;
  $(".badge", card).textContent = "open now";
  $(".run", card).textContent = "live";
  $(".when", card).textContent = new Date(m.wall).toLocaleString();
  $(".duration", card).textContent = `${m.event.end - m.event.start + 1} frames so far`;
  $(".peak", card).textContent = `${fmt(m.event.peak_score)} so far`;
}

$("#filters").addEventListener("input", () => load());
$("#filters").addEventListener("submit", (e) => e.preventDefault());
load();
setInterval(load, 15000);
