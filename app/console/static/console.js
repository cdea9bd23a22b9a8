// gpu-autoscaler console: live refresh and keyboard navigation. Plain JavaScript, no build step, no
// dependencies. The page works without it (server-rendered, filters as a form); this script only:
// - polls <base>/sections and swaps the sections whose digest changed (no reload; open details, focus and
//   the selected GPU survive the swap), pausing while the tab is hidden;
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
  const digests = {};
  let timer = 0;
  let inflight = null;
  let selected = null; // "node/gpu" of the GPU whose details are shown
  let current = null; // "node/gpu" of the map's keyboard stop

  window.gpuConsole = { loadedAt: Date.now(), refreshes: 0, swaps: 0 };

  document.querySelectorAll("[data-section]").forEach(function (el) {
    digests[el.dataset.section] = el.dataset.hash || "";
  });

  function query(extra) {
    const q = new URLSearchParams();
    const data = new FormData(form);
    for (const name of ["product", "namespace"]) {
      const v = data.get(name);
      if (v) q.set(name, v);
    }
    if (extra) for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
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
    return document.querySelector(sel);
  }

  function swap(name, html) {
    const el = document.querySelector('[data-section="' + name + '"]');
    if (!el) return;
    const open = Array.from(el.querySelectorAll("details[open]"), (d) => d.id);
    const active = document.activeElement;
    const hadFocus = el.contains(active);
    const focusId = hadFocus && active.id ? active.id : null;
    el.innerHTML = html;
    for (const id of open) {
      const d = document.getElementById(id);
      if (d) d.open = true;
    }
    if (name === "map") {
      initGrid(hadFocus);
    } else if (focusId) {
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
    const q = query({ have: Object.values(digests).join(",") });
    try {
      const r = await fetch(base + "/sections?" + q.toString(), {
        cache: "no-store",
        headers: { Accept: "application/json" },
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
    const q = query(null).toString();
    history.replaceState(null, "", base + (q ? "?" + q : ""));
    digests.map = ""; // the map must come back for the new filters
    refresh();
  }

  // -- GPU map: roving tabindex over the grid ---------------------------------------------------------------
  function cells() {
    return Array.from(document.querySelectorAll(".grid .g"));
  }

  function setCurrent(cell, focus) {
    const prev = findCell(current);
    if (prev) prev.tabIndex = -1;
    cell.tabIndex = 0;
    current = keyOf(cell);
    if (focus) cell.focus();
  }

  function initGrid(refocus) {
    const all = cells();
    if (!all.length) return;
    const keep = findCell(current) || all[0];
    current = null;
    setCurrent(keep, refocus);
    const sel = findCell(selected);
    if (sel) sel.classList.add("sel");
  }

  function rowCells(cell) {
    return Array.from(cell.closest(".row").querySelectorAll(".g"));
  }

  function move(cell, key) {
    const inRow = rowCells(cell);
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
    document.querySelectorAll(".g.sel").forEach((c) => c.classList.remove("sel"));
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
      for (const other of document.querySelectorAll('.g[data-pods~="' + CSS.escape(pod) + '"]')) {
        if (other !== cell) other.classList.toggle("same", on);
      }
    }
  }

  const mapRoot = document.querySelector('[data-section="map"]');
  mapRoot.addEventListener("click", function (ev) {
    const cell = ev.target.closest(".g");
    if (!cell) return;
    setCurrent(cell, true);
    showDetails(cell);
  });
  mapRoot.addEventListener("keydown", function (ev) {
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
  mapRoot.addEventListener("mouseover", function (ev) {
    const cell = ev.target.closest(".g");
    if (cell) highlight(cell, true);
  });
  mapRoot.addEventListener("mouseout", function (ev) {
    const cell = ev.target.closest(".g");
    if (cell) highlight(cell, false);
  });
  mapRoot.addEventListener("focusin", function (ev) {
    const cell = ev.target.closest(".g");
    if (cell) highlight(cell, true);
  });
  mapRoot.addEventListener("focusout", function (ev) {
    const cell = ev.target.closest(".g");
    if (cell) highlight(cell, false);
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });

  initGrid(false);
  setLive(true, null);
  schedule();
})();
