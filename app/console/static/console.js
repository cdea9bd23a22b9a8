// gpu-autoscaler console: live refresh and keyboard navigation. Plain JavaScript, no build step, no
// dependencies. The page works without it (server-rendered; filters are a form; "Show all nodes" is a link);
// this script only:
// - polls <base>/sections (POST: the digests of what the page shows) and puts in what changed: whole
//   sections, and single rows of the GPU map (one pod bound: one row), keeping open details, focus and the
//   selected GPU; it pauses while the tab is hidden;
// - fetches the map's remaining rows right after the first paint of a large cluster;
// - applies the filters without a reload;
// - makes the GPU map one keyboard stop (arrow keys, Home/End, Enter) and shows a GPU's details on click.
(function () {
  "use strict";

  const body = document.body;
  const base = body.dataset.base || "/ui";
  const refreshMs = Math.max(500, Number(body.dataset.refresh || 5) * 1000);
  const form = document.getElementById("filters");
  const live = document.getElementById("live");
  const liveText = document.getElementById("live-text");
  const details = document.getElementById("gpu-details");
  const grid = document.getElementById("grid");
  const digests = {};
  let timer = 0;
  let inflight = null;
  let selected = null; // "node/gpu" of the GPU whose details are shown
  let current = null; // "node/gpu" of the map's keyboard stop

  window.gpuConsole = { loadedAt: Date.now(), refreshes: 0, swaps: 0, rowsReplaced: 0, completeAt: null };

  document.querySelectorAll("[data-section]").forEach(function (el) {
    digests[el.dataset.section] = el.dataset.hash || "";
  });

  function filters() {
    const data = new FormData(form);
    return { product: data.get("product") || "", namespace: data.get("namespace") || "" };
  }

  function setLive(ok, generated) {
    live.classList.toggle("on", ok);
    live.classList.toggle("off", !ok);
    if (ok && generated) {
      liveText.textContent = "Live · updated " + generated.text + " UTC";
    } else if (!ok) {
      liveText.textContent = "Connection lost · retrying";
    }
  }

  // -- the map's cells ---------------------------------------------------------------------------------------
  function nodeOf(cell) {
    return cell.closest(".row").dataset.node;
  }

  function keyOf(cell) {
    return nodeOf(cell) + "/" + cell.dataset.gpu;
  }

  function findCell(key) {
    if (!key) return null;
    const i = key.lastIndexOf("/");
    const sel =
      '.row[data-node="' + CSS.escape(key.slice(0, i)) + '"] .g[data-gpu="' + CSS.escape(key.slice(i + 1)) + '"]';
    return grid.querySelector(sel);
  }

  function rowDigests() {
    const out = {};
    for (const row of grid.querySelectorAll(":scope > .row")) out[row.dataset.node] = row.dataset.d;
    return out;
  }

  // The rows the server sent, parsed in one go (hundreds of rows: one parse, not hundreds).
  function parseRows(fresh) {
    const t = document.createElement("template");
    t.innerHTML = Object.values(fresh).join("");
    const out = new Map();
    for (const row of t.content.children) out.set(row.dataset.node, row);
    return out;
  }

  // Put the map's rows in `order`, replacing those the server sent again; keep focus and selection.
  function patchGrid(order, fresh) {
    const active = document.activeElement;
    const focusKey = grid.contains(active) && active.classList.contains("g") ? keyOf(active) : null;
    const existing = new Map();
    for (const row of grid.querySelectorAll(":scope > .row")) existing.set(row.dataset.node, row);
    const parsed = parseRows(fresh);
    let prev = null;
    for (const name of order) {
      let row = existing.get(name);
      existing.delete(name);
      const next = parsed.get(name);
      if (next) {
        if (row) row.replaceWith(next);
        row = next;
        window.gpuConsole.rowsReplaced += 1;
      }
      if (!row) continue;
      const want = prev ? prev.nextElementSibling : grid.firstElementChild;
      if (row !== want) grid.insertBefore(row, want);
      prev = row;
    }
    for (const gone of existing.values()) gone.remove();
    grid.setAttribute("aria-rowcount", String(order.length));
    initGrid(false);
    if (focusKey) {
      const again = findCell(focusKey);
      if (again) setCurrent(again, document.activeElement === document.body || !grid.contains(document.activeElement));
    }
    const more = document.getElementById("more");
    if (more && grid.querySelectorAll(":scope > .row").length >= order.length) {
      more.remove();
      if (window.gpuConsole.completeAt === null) window.gpuConsole.completeAt = performance.now();
    }
  }

  function swap(name, html) {
    const el = document.querySelector('[data-section="' + name + '"]');
    if (!el) return;
    const open = Array.from(el.querySelectorAll("details[open]"), (d) => d.id);
    const active = document.activeElement;
    const focusId = el.contains(active) && active.id ? active.id : null;
    el.innerHTML = html;
    for (const id of open) {
      const d = document.getElementById(id);
      if (d) d.open = true;
    }
    if (focusId) {
      const again = document.getElementById(focusId);
      if (again) again.focus();
    }
    window.gpuConsole.swaps += 1;
  }

  function updateOptions(select, values) {
    if (document.activeElement === select) return;
    const have = Array.from(select.options).slice(1).map((o) => o.value);
    if (have.join("\n") === values.join("\n")) return;
    const keep = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const v of values) select.add(new Option(v, v, false, v === keep));
    if (keep && values.indexOf(keep) < 0) {
      select.add(new Option(keep, keep, false, true)); // keep the user's choice visible
    }
  }

  async function refresh() {
    clearTimeout(timer);
    if (inflight) inflight.abort();
    const ctrl = new AbortController();
    inflight = ctrl;
    const payload = Object.assign({ have: Object.values(digests), rows: rowDigests() }, filters());
    try {
      const r = await fetch(base + "/sections", {
        method: "POST",
        cache: "no-store",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
        signal: ctrl.signal,
      });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const data = await r.json();
      for (const [name, s] of Object.entries(data.sections)) {
        if (s.html !== null && s.hash !== digests[name]) {
          swap(name, s.html);
          digests[name] = s.hash;
        }
      }
      patchGrid(data.grid.order, data.grid.rows);
      updateOptions(document.getElementById("f-product"), data.options.products);
      updateOptions(document.getElementById("f-namespace"), data.options.namespaces);
      window.gpuConsole.refreshes += 1;
      setLive(true, data.generated);
    } catch (err) {
      if (err.name === "AbortError") return;
      setLive(false, null);
    } finally {
      if (inflight === ctrl) inflight = null;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(refresh, refreshMs);
  }

  // -- filters: no reload; the URL keeps them so a reload or a shared link shows the same view --------------
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    applyFilters();
  });
  form.addEventListener("change", applyFilters);

  function applyFilters() {
    const f = filters();
    const q = new URLSearchParams();
    if (f.product) q.set("product", f.product);
    if (f.namespace) q.set("namespace", f.namespace);
    const qs = q.toString();
    history.replaceState(null, "", base + (qs ? "?" + qs : ""));
    refresh();
  }

  // -- GPU map: roving tabindex over the grid ---------------------------------------------------------------
  function setCurrent(cell, focus) {
    const prev = findCell(current);
    if (prev) prev.tabIndex = -1;
    cell.tabIndex = 0;
    current = keyOf(cell);
    if (focus) cell.focus();
  }

  function initGrid(refocus) {
    const first = grid.querySelector(".g");
    if (!first) return;
    const keep = findCell(current) || first;
    current = null;
    setCurrent(keep, refocus);
    const sel = findCell(selected);
    if (sel) sel.classList.add("sel");
  }

  function move(cell, key) {
    const inRow = Array.from(cell.closest(".row").querySelectorAll(".g"));
    const i = inRow.indexOf(cell);
    if (key === "ArrowRight") return inRow[i + 1];
    if (key === "ArrowLeft") return inRow[i - 1];
    if (key === "Home") return inRow[0];
    if (key === "End") return inRow[inRow.length - 1];
    if (key !== "ArrowDown" && key !== "ArrowUp") return undefined;
    let row = cell.closest(".row");
    do {
      row = key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
    } while (row && !row.querySelector(".g"));
    if (!row) return null;
    const next = Array.from(row.querySelectorAll(".g"));
    return next[Math.min(i, next.length - 1)];
  }

  async function showDetails(cell) {
    grid.querySelectorAll(".g.sel").forEach((c) => c.classList.remove("sel"));
    cell.classList.add("sel");
    selected = keyOf(cell);
    const q = new URLSearchParams({ node: nodeOf(cell), gpu: cell.dataset.gpu });
    try {
      const r = await fetch(base + "/gpu?" + q.toString(), { cache: "no-store" });
      details.innerHTML = await r.text();
    } catch (err) {
      details.textContent = "Could not load the GPU's details: " + err.message;
    }
  }

  function highlight(cell, on) {
    const pods = (cell.dataset.pods || "").split(" ").filter(Boolean);
    for (const pod of pods) {
      // every GPU of the same pod (a multi-GPU pod, or a share on another GPU)
      for (const other of grid.querySelectorAll('.g[data-pods~="' + CSS.escape(pod) + '"]')) {
        if (other !== cell) other.classList.toggle("same", on);
      }
    }
  }

  grid.addEventListener("click", function (ev) {
    const cell = ev.target.closest(".g");
    if (!cell) return;
    setCurrent(cell, true);
    showDetails(cell);
  });
  grid.addEventListener("keydown", function (ev) {
    const cell = ev.target.closest(".g");
    if (!cell) return;
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      showDetails(cell);
      return;
    }
    const next = move(cell, ev.key);
    if (next !== undefined) ev.preventDefault();
    if (next) setCurrent(next, true);
  });
  // pointing at or focusing a GPU outlines every GPU of the same pod
  for (const [type, on] of [["mouseover", true], ["mouseout", false], ["focusin", true], ["focusout", false]]) {
    grid.addEventListener(type, function (ev) {
      const cell = ev.target.closest(".g");
      if (cell) highlight(cell, on);
    });
  }

  // -- decisions: each one's score table and filter reasons come when it is opened ---------------------------
  const decisionHtml = new Map(); // "key seq" -> fragment: a reopened decision needs no new request
  document.addEventListener(
    "toggle",
    async function (ev) {
      const d = ev.target;
      if (!(d instanceof HTMLDetailsElement) || !d.open || !d.dataset.key) return;
      const body = d.querySelector(".dd");
      const id = d.dataset.key + " " + d.dataset.seq;
      let html = decisionHtml.get(id);
      if (html === undefined) {
        const q = new URLSearchParams({ key: d.dataset.key, fragment: "1" });
        try {
          const r = await fetch(base + "/decision?" + q.toString(), { cache: "no-store" });
          html = await r.text();
          if (r.ok) decisionHtml.set(id, html);
        } catch (err) {
          html = "<p class='warn-note'>Could not load this decision's details.</p>";
        }
      }
      if (body.dataset.loaded !== id) {
        body.innerHTML = html;
        body.dataset.loaded = id;
      }
    },
    true,
  );

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });

  initGrid(false);
  setLive(true, null);
  if (document.getElementById("more")) {
    // the rest of a large cluster's rows, once the first frame is on screen
    requestAnimationFrame(() => requestAnimationFrame(refresh));
  } else {
    window.gpuConsole.completeAt = performance.now();
    schedule();
  }
})();
