// The overview's plots: fetched as JSON from the page's data-source every 5 s and drawn with Chart.js (vendored
// beside this file; no CDN). Each chart is made once and updated in place, so a refresh does not flicker.
(function () {
  "use strict";
  const root = document.getElementById("overview");
  const charts = {};
  const palette = ["#2f6fb5", "#d9822b", "#3a9a5b", "#b8405e", "#7e57c2", "#8d6e63", "#00838f", "#9e9d24"];

  function draw(id, type, labels, datasets, stacked) {
    const canvas = document.getElementById(id);
    if (charts[id]) {
      charts[id].data.labels = labels;
      charts[id].data.datasets = datasets;
      charts[id].update("none");
      return;
    }
    const scales = type === "doughnut" ? {} : { x: { stacked: !!stacked }, y: { stacked: !!stacked, beginAtZero: true } };
    charts[id] = new Chart(canvas, {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false, scales: scales },
    });
    canvas.dataset.drawn = "true";
  }

  function bars(id, counts, label) {
    draw(id, "bar", Object.keys(counts), [{ label: label, data: Object.values(counts), backgroundColor: palette[0] }]);
  }

  function quantiles(id, byName) {
    const names = Object.keys(byName);
    draw(id, "bar", names, [
      { label: "p50", data: names.map(function (n) { return byName[n].p50; }), backgroundColor: palette[0] },
      { label: "p99", data: names.map(function (n) { return byName[n].p99; }), backgroundColor: palette[1] },
    ]);
  }

  function list(id, items, text) {
    const ul = document.getElementById(id);
    ul.replaceChildren(...(items.length ? items : [null]).map(function (item) {
      const li = document.createElement("li");
      li.textContent = item === null ? "none" : text(item);
      return li;
    }));
  }

  function render(d) {
    const times = d.times.map(function (t) { return new Date(t * 1000).toLocaleTimeString(); });
    draw("chart-requests", "bar", times, [
      { label: "ok", data: d.ok, backgroundColor: palette[2] },
      { label: "errors", data: d.errors, backgroundColor: palette[3] },
    ], true);
    draw("chart-codes", "doughnut", Object.keys(d.by_code),
      [{ data: Object.values(d.by_code), backgroundColor: palette }]);
    quantiles("chart-latency", d.latency);
    quantiles("chart-ttfc", d.ttfc);
    bars("chart-spend-team", d.spend_team, "USD");
    bars("chart-spend-model", d.spend_model, "USD");
    document.getElementById("forecast").textContent =
      "This month: " + d.forecast.spent_usd.toFixed(4) + " USD spent, " + d.forecast.forecast_usd.toFixed(4) + " forecast";
    const budgets = d.budgets.filter(function (b) { return b.cap_usd; });
    draw("chart-budgets", "bar", budgets.map(function (b) { return b.team + " (" + b.period + ")"; }), [
      { label: "spent", data: budgets.map(function (b) { return b.spent_usd; }), backgroundColor: palette[3] },
      { label: "left", data: budgets.map(function (b) { return Math.max(0, b.cap_usd - b.spent_usd); }), backgroundColor: palette[2] },
    ], true);
    draw("chart-cache", "doughnut", ["hits", "misses"],
      [{ data: [d.cache.hits, d.cache.misses], backgroundColor: [palette[2], palette[4]] }]);
    document.getElementById("cache-saved").textContent = "Saved by the cache: " + d.cache.saved_usd.toFixed(6) + " USD";
    bars("chart-guardrails", d.guardrails, "actions");
    const live = d.live;
    document.getElementById("processes").textContent = live.processes;
    document.getElementById("stale").textContent = live.stale.length
      ? "(not heard from lately, left out: " + live.stale.map(function (s) { return s.process + " " + s.age_s + " s ago"; }).join(", ") + ")"
      : "";
    document.getElementById("in-flight").textContent = live.in_flight;
    const queued = Object.keys(live.queued);
    document.getElementById("queued").textContent = queued.length
      ? queued.map(function (r) { return r + " " + live.queued[r]; }).join(", ")
      : "no queues";
    document.getElementById("last-purge").textContent = live.last_purge;
    list("breakers", live.breakers, function (b) {
      return b.target + ": " + b.state + (b.rested_s ? ", rested " + b.rested_s + " s" : "") + " (in " + b.processes + " of " + live.processes + " processes)";
    });
    list("drift", live.drift, function (f) { return f.model + " / " + f.provider + ": " + f.metric + " since " + f.since + " (" + f.detail + ")"; });
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    root.dataset.loaded = "true";
  }

  function refresh() {
    fetch(root.dataset.source, { credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || !r.ok) { window.location = "/console/login"; return null; }
        return r.json();
      })
      .then(function (d) { if (d) { render(d); } })
      .catch(function (e) { document.getElementById("updated").textContent = "refresh failed: " + e; });
  }

  refresh();
  setInterval(refresh, 5000);
})();
