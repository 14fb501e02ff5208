// Bunker dashboard: progressive enhancement only. Every page works
// without this script; with it, running operations show their progress
// live (server-sent events from /api/events), and the overview and plan
// pages refresh their content when a run starts or ends.
"use strict";
(function () {
  var body = document.body;
  var live = body.dataset.live === "true";
  // Only pages that show runs listen.
  if (!window.EventSource || !(live || document.querySelector("[data-live-plan]"))) return;
  var seen = body.dataset.generation;
  var refreshing = false;

  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(1) + " " + units[i];
  }

  function describe(p) {
    if (p.running) {
      var g = p.running.progress;
      var text = p.running.kind + " running: " + g.files_done + " of " + g.files_total + " files, " +
        size(g.bytes_done) + " of " + size(g.bytes_total) + ", " + size(g.bytes_per_second) + "/s";
      if (g.eta_seconds !== null && g.eta_seconds !== undefined) text += ", about " + Math.ceil(g.eta_seconds) + " s left";
      return text;
    }
    if (p.queued && p.queued.length) return "queued: " + p.queued.join(", ");
    return "";
  }

  function refresh() {
    if (refreshing) return;
    refreshing = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) main.innerHTML = fresh.innerHTML;
      })
      .finally(function () { refreshing = false; });
  }

  var events = new EventSource("/api/events");
  events.addEventListener("state", function (e) {
    var state = JSON.parse(e.data);
    var byPlan = {};
    state.plans.forEach(function (p) { byPlan[p.plan] = p; });
    document.querySelectorAll("[data-live-plan]").forEach(function (el) {
      var p = byPlan[el.dataset.livePlan];
      var text = p ? describe(p) : "";
      if (el.textContent !== text) el.textContent = text;
    });
    if (live && String(state.generation) !== seen) {
      seen = String(state.generation);
      body.dataset.generation = seen;
      refresh();
    }
  });
})();
