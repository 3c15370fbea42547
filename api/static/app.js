// The fleet page: a table of every device (#/) and a page per device (#/device/<id>) with its
// energy today (15 min), over the last 7 days (1 h) and 30 days (1 d). Everything it shows comes
// from the API of the same process; intervals without data (quality N) are gaps, never zeros.
"use strict";

const view = document.getElementById("view");
const status = document.getElementById("status");
const login = document.getElementById("login");

function token() { return sessionStorage.getItem("wattstream-token") || ""; }

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    login.hidden = false;
    throw new Error("this API asks for a token");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("wattstream-token", document.getElementById("token").value);
  login.hidden = true;
  route();
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function fixed(value, digits) { return value === null || value === undefined ? "—" : value.toFixed(digits); }

function wall(iso, tz) {
  if (!iso) return "—";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

function alertText(alerts) {
  if (alerts === null || alerts === undefined) return "—";
  if (!alerts.length) return "ok";
  return alerts.map((a) => a.kind || a.rule || "alert").join(", ");
}

function cell(text, attrs = {}) { return el("td", attrs, text); }

async function fleet(cursor) {
  const query = new URLSearchParams({ limit: "100" });
  if (cursor) query.set("cursor", cursor);
  const page = await api("/devices?" + query);
  const head = el("tr", {},
    ...["device", "name", "site", "last seen", "power W", "today kWh", "complete today", "alerts"].map(
      (h, i) => el("th", { class: i >= 4 && i <= 6 ? "num" : null }, h)));
  const rows = page.devices.map((d) => el("tr", { "data-device": d.device_id },
    el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(d.device_id) }, d.device_id)),
    cell(d.name || ""),
    cell(d.site || ""),
    el("td", {}, el("time", { datetime: d.last_seen || "" }, wall(d.last_seen, d.tz)), el("span", { class: "muted" }, " " + d.tz)),
    cell(fixed(d.power_w, 1), { class: "num", "data-field": "power_w" }),
    cell(d.today_energy_wh === null ? "—" : fixed(d.today_energy_wh / 1000, 3), { class: "num", "data-field": "today_kwh" }),
    cell(d.today_completeness_pct === null ? "—" : fixed(d.today_completeness_pct, 1) + " %", { class: "num", "data-field": "completeness" }),
    cell(alertText(d.alerts), { "data-field": "alerts" })));
  const parts = [el("h1", {}, "Fleet"), el("table", { id: "fleet" }, el("thead", {}, head), el("tbody", {}, ...rows))];
  if (page.next_cursor) {
    parts.push(el("p", {}, el("a", { href: "#/page/" + encodeURIComponent(page.next_cursor), id: "next" }, "next page")));
  }
  view.replaceChildren(...parts);
}

function addDays(date, days) {
  const d = new Date(date + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

// One chart: bars at the intervals' real instants, labelled in the device's zone, so a DST day
// has its 92 or 100 quarters; a null value (quality N) draws no bar.
function chart(id, title, series, unit, scale) {
  const xs = series.intervals.map((i) => Date.parse(i.local_start) / 1000);
  const ys = series.intervals.map((i) => (i.quality === "N" ? null : i.energy_wh / scale));
  const box = el("div", { class: "chart", id: "chart-" + id, "data-every": series.every, "data-values": JSON.stringify(ys) });
  const csv = `/devices/${encodeURIComponent(series.device_id)}/energy?` +
    new URLSearchParams({ ...series.query, format: "csv" });
  const link = el("a", { href: csv, id: "csv-" + id, download: `${series.device_id}-${id}.csv` }, "CSV");
  link.addEventListener("click", (event) => download(event, csv, link.getAttribute("download")));
  const total = series.energy_wh / 1000;
  const rows = series.intervals.map((i) => el("tr", { class: "q-" + i.quality },
    cell(i.local_start), cell(i.quality),
    cell(i.energy_wh === null ? "—" : fixed(i.energy_wh, 3), { class: "num" })));
  const details = el("details", { id: "table-" + id },
    el("summary", {}, `${series.intervals.length} intervals of ${series.every}`),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "local start"), el("th", {}, "quality"), el("th", { class: "num" }, "Wh"))),
      el("tbody", {}, ...rows)));
  const section = el("section", {},
    el("h2", {}, `${title} `, el("span", { class: "muted", id: "total-" + id }, `${fixed(total, 3)} kWh`), " ", link),
    box, details);
  view.append(section);
  const tz = series.tz;
  new uPlot({
    width: Math.min(980, Math.max(320, view.clientWidth - 20)),
    height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
    legend: { show: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [
      { value: (u, v, si, idx) => (idx === null ? "" : series.intervals[idx].local_start) },
      { label: unit, fill: "rgba(47,111,222,0.55)", stroke: "#2f6fde", width: 0,
        paths: uPlot.paths.bars({ size: [0.9, 60], align: 1 }), points: { show: false },
        value: (u, v) => (v === null ? "no data" : v.toFixed(3)) },
    ],
    axes: [{}, { label: unit, size: 60 }],
  }, [xs, ys], box);
}

async function download(event, url, name) {
  if (!token()) return; // a plain link: the browser downloads it
  event.preventDefault();
  const response = await fetch(url, { headers: { Authorization: "Bearer " + token() } });
  const blob = await response.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  a.click();
  URL.revokeObjectURL(a.href);
}

async function device(id) {
  const base = "/devices/" + encodeURIComponent(id);
  const info = await api(base);
  const today = await api(base + "/energy");
  const date = today.from.slice(0, 10);
  const tomorrow = addDays(date, 1);
  const week = { from: addDays(date, -6), to: tomorrow, every: "1h" };
  const month = { from: addDays(date, -29), to: tomorrow, every: "1d" };
  const [seven, thirty] = await Promise.all([
    api(base + "/energy?" + new URLSearchParams(week)),
    api(base + "/energy?" + new URLSearchParams(month)),
  ]);
  view.replaceChildren(
    el("h1", {}, info.name ? `${info.name} (${id})` : id),
    el("div", { class: "meta" },
      el("span", {}, "site ", el("b", {}, info.site || "—")),
      el("span", {}, "zone ", el("b", {}, info.tz)),
      el("span", {}, "last seen ", el("b", {}, el("time", { datetime: info.last_seen || "" }, wall(info.last_seen, info.tz)))),
      el("span", {}, "power ", el("b", { id: "power" }, `${fixed(info.power_w, 1)} W`)),
      el("span", {}, "complete today ", el("b", {}, info.today_completeness_pct === null ? "—" : `${fixed(info.today_completeness_pct, 1)} %`)),
      el("span", {}, "alerts ", el("b", {}, alertText(info.alerts)))),
  );
  chart("today", `Today, ${date}, per 15 minutes`, { ...today, query: {} }, "Wh", 1);
  chart("week", "Last 7 days, per hour", { ...seven, query: week }, "Wh", 1);
  chart("month", "Last 30 days, per day", { ...thirty, query: month }, "kWh", 1000);
}

async function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  view.dataset.state = "loading";
  status.textContent = "loading …";
  try {
    if (hash.startsWith("/device/")) await device(hash.slice("/device/".length));
    else if (hash.startsWith("/page/")) await fleet(hash.slice("/page/".length));
    else await fleet(null);
    status.textContent = "";
    view.dataset.state = "ready";
  } catch (error) {
    status.textContent = "";
    view.replaceChildren(el("p", { class: "error", id: "error" }, String(error.message || error)));
    view.dataset.state = "error";
  }
}

window.addEventListener("hashchange", route);
route();
