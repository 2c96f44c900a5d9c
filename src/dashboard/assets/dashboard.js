// The dashboard's live part. The page works without it (every table is
// rendered by the server, the forms post as forms); with it, the page
// listens to /api/events and, when the store changes, fetches the JSON
// API and the charts again and re-renders in place. Every value is set
// as text (never as markup), except the charts, which are the server's
// own escaped SVG.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };

  // 1,234.5 sats, as the server writes it.
  function satsNumber(msat) {
    var whole = Math.floor(msat / 1000), frac = msat % 1000;
    var s = String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    if (frac) s += "." + String(frac).padStart(3, "0").replace(/0+$/, "");
    return s;
  }
  function sats(msat) { return satsNumber(msat) + " sats"; }
  function utc(secs) {
    return new Date(secs * 1000).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
  }

  // An element with attributes and children (strings become text).
  function el(tag, attrs) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function td(text, cls) { return el("td", cls ? { "class": cls } : {}, text); }
  function fill(tbody, items, row, empty, cols) {
    var body = $(tbody);
    if (!body) return;
    var rows = items.map(row);
    if (!rows.length) rows = [el("tr", { "class": "empty" }, el("td", { colspan: String(cols) }, empty))];
    body.replaceChildren.apply(body, rows);
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(url + ": " + r.status);
        return r.json();
      });
  }

  function renderSessions(summary) {
    fill("sessions-body", summary.sessions, function (s) {
      var name = el("td", {}, s.session);
      if (s.agent !== null) name.append(" ", el("span", { "class": "tag" }, "agent"));
      var n = el("td", { "class": "num" }, String(s.payments));
      if (s.unresolved > 0) n.append(" ", el("span", { "class": "tag warn" }, s.unresolved + " unresolved"));
      var used = Math.min(s.spent_msat + s.reserved_msat, s.budget_msat);
      return el("tr", { "data-session": s.session }, name, td(s.pool === null ? "—" : s.pool),
        td(sats(s.budget_msat), "num"), td(sats(s.spent_msat), "num"),
        td(sats(s.reserved_msat), "num"), td(sats(s.left_msat), "num"),
        el("td", {}, el("progress", { max: String(Math.max(s.budget_msat, 1)), value: String(used) })),
        n, td(utc(s.last_seen_at)));
    }, "No session has been opened in this store yet.", 9);
    fill("pools-body", summary.pools, function (p) {
      return el("tr", {}, td(p.pool), td(String(p.sessions), "num"), td(sats(p.budget_msat), "num"),
        td(sats(p.spent_msat), "num"), td(sats(p.reserved_msat), "num"), td(sats(p.left_msat), "num"));
    }, "No server pool: no serve process has used this store.", 6);
  }

  function renderTotals(summary) {
    var t = summary.all_time;
    var reserved = summary.sessions.reduce(function (a, s) { return a + s.reserved_msat; }, 0);
    var set = function (id, text) { var e = $(id); if (e) e.textContent = text; };
    set("total-spent", sats(t.spent_msat));
    set("total-payments", String(t.payments));
    set("total-day", sats(summary.last_day_msat));
    set("total-reserved", sats(reserved));
    var notes = document.querySelectorAll("#totals .note");
    if (notes.length === 4) {
      notes[0].textContent = sats(t.fee_msat) + " in fees";
      notes[1].textContent = t.by_origin.length === 1 ? "1 origin" : t.by_origin.length + " origins";
      notes[2].textContent = summary.daily_cap_msat === null ? "no daily cap" : "of a " + sats(summary.daily_cap_msat) + " daily cap";
    }
  }

  function renderPause(state) {
    var box = $("pause");
    if (!box) return;
    var p = state.pause;
    box.className = "pause " + (p ? "paused" : "running");
    var banner, form;
    if (p) {
      var said = el("span", {}, "Paused by ", el("b", { id: "pause-by" }, p.by), " at ",
        el("span", { id: "pause-since" }, utc(p.since)));
      if (p.reason) said.append(": ", el("q", { id: "pause-reason" }, p.reason));
      said.append(".");
      banner = el("div", { "class": "banner" }, el("strong", { id: "pause-state" }, "Paused: no agent can pay."), " ", said);
      form = el("form", { method: "post", action: "/api/resume", id: "resume-form" },
        el("button", { type: "submit", id: "resume", "class": "go" }, "Resume payments"));
    } else {
      banner = el("div", { "class": "banner" }, el("strong", { id: "pause-state" }, "Payments allowed."), " ",
        el("span", {}, "One click stops every agent paying from this store."));
      form = el("form", { method: "post", action: "/api/pause", id: "pause-form" },
        el("input", { type: "text", name: "reason", id: "pause-reason-input", maxlength: "500",
          placeholder: "Reason (optional)", "aria-label": "Reason" }),
        el("button", { type: "submit", id: "pause-button", "class": "stop" }, "Pause all payments"));
    }
    box.replaceChildren(banner, form);
    fill("history-body", state.history, function (e) {
      return el("tr", {}, td(utc(e.paused_at)), td(e.paused_by), td(e.reason || ""),
        td(e.resumed_at === null ? "standing" : utc(e.resumed_at)), td(e.resumed_by || ""));
    }, "Never paused.", 5);
  }

  function filterQuery() {
    var form = $("filter");
    var q = new URLSearchParams();
    if (!form) return q;
    ["session", "origin", "status"].forEach(function (k) {
      var v = form.elements[k] && form.elements[k].value;
      if (v) q.set(k, v);
    });
    return q;
  }

  function renderPayments(data) {
    fill("payments-body", data.payments, function (p) {
      var status = el("span", { "class": "status " + p.status, title: p.error }, p.status);
      return el("tr", { "data-id": String(p.id) }, td(utc(p.time)), td(p.session), td(p.origin),
        el("td", { "class": "url" }, el("span", { title: p.url }, p.url)),
        td(sats(p.amount_msat), "num"), td(sats(p.fee_msat), "num"), el("td", {}, status), td(p.scheme));
    }, "No payment yet.", 8);
    var n = data.payments.length, count = $("payments-count");
    if (count) {
      count.textContent = n === 0 ? "No payment matches." : n === 1 ? "1 payment, newest first." :
        n >= data.filter.limit ? "The newest " + n + " payments (the API's limit= shows more)." :
        n + " payments, newest first.";
    }
  }

  // Keeps the filter's choices in step with the sessions and origins seen.
  function renderChoices(summary, tokens) {
    var add = function (id, values) {
      var select = $(id);
      if (!select) return;
      var have = Array.prototype.map.call(select.options, function (o) { return o.value; });
      values.forEach(function (v) {
        if (have.indexOf(v) < 0) { select.appendChild(el("option", { value: v }, v)); have.push(v); }
      });
    };
    add("filter-session", summary.sessions.map(function (s) { return s.session; }));
    add("filter-origin", summary.all_time.by_origin.map(function (o) { return o.origin; })
      .concat(tokens.by_origin.map(function (t) { return t.origin; })));
  }

  function renderTokens(data) {
    fill("tokens-body", data.by_origin, function (t) {
      return el("tr", {}, td(t.origin), el("td", {}, el("span", { "class": "status " + t.status }, t.status)),
        td(t.scheme), td(String(t.tokens), "num"), td(sats(t.spent_msat), "num"));
    }, "No token bought yet.", 5);
  }

  function refreshChart(bucket) {
    return fetch("/chart.svg?bucket=" + bucket, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("chart " + r.status); return r.text(); })
      .then(function (svg) {
        var box = $("chart-" + bucket);
        var doc = new DOMParser().parseFromString(svg, "image/svg+xml");
        var node = doc.documentElement;
        if (box && node && node.nodeName === "svg") box.replaceChildren(document.importNode(node, true));
      });
  }

  var running = false, again = false;
  function refresh() {
    if (running) { again = true; return; }
    running = true;
    Promise.all([
      getJSON("/api/summary"),
      getJSON("/api/payments?" + filterQuery().toString()),
      getJSON("/api/tokens"),
      getJSON("/api/pause"),
      refreshChart("hour"),
      refreshChart("day"),
    ]).then(function (r) {
      renderSessions(r[0]);
      renderTotals(r[0]);
      renderPayments(r[1]);
      renderTokens(r[2]);
      renderChoices(r[0], r[2]);
      renderPause(r[3]);
      var stamp = $("rendered");
      if (stamp) stamp.textContent = utc(r[0].now);
      document.body.setAttribute("data-refreshed", String((+document.body.getAttribute("data-refreshed") || 0) + 1));
    }).catch(function (e) {
      live("error", "cannot refresh: " + e.message);
    }).then(function () {
      running = false;
      if (again) { again = false; refresh(); }
    });
  }

  function live(state, text) {
    var box = $("live"), t = $("live-text");
    if (box) box.setAttribute("data-state", state);
    if (t) t.textContent = text;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (r) {
      return r.json().then(function (v) {
        if (!r.ok) throw new Error(v.error || String(r.status));
        return v;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // The switch: posted by the script, the page stays.
    var box = $("pause");
    if (box) {
      box.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var form = ev.target;
        var button = form.querySelector("button");
        if (button) button.disabled = true;
        var done = form.id === "resume-form" ? post("/api/resume") :
          post("/api/pause", { reason: (form.elements.reason && form.elements.reason.value) || null });
        done.then(function (state) { renderPause(state); refresh(); })
          .catch(function (e) { alert("The dashboard could not do that: " + e.message); if (button) button.disabled = false; });
      });
    }
    // The filter: the address keeps it (so a reload shows the same), no reload.
    var filter = $("filter");
    if (filter) {
      filter.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var q = filterQuery().toString();
        history.replaceState(null, "", q ? "/?" + q : "/");
        refresh();
      });
      filter.addEventListener("change", function () { filter.requestSubmit(); });
    }
    var clear = $("filter-clear");
    if (clear && filter) {
      clear.addEventListener("click", function (ev) {
        ev.preventDefault();
        ["session", "origin", "status"].forEach(function (k) { if (filter.elements[k]) filter.elements[k].value = ""; });
        history.replaceState(null, "", "/");
        refresh();
      });
    }
    if (!window.EventSource) return;
    var events = new EventSource("/api/events");
    events.addEventListener("open", function () { live("on", "live"); });
    events.addEventListener("error", function () { live("error", "reconnecting…"); });
    events.addEventListener("hello", function () { live("on", "live"); refresh(); });
    events.addEventListener("change", function () { refresh(); });
  });
})();
