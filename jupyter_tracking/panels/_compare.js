// The runs table of the comparison panel (anywidget front end).
// The kernel owns the data: it sends one page of rows at a time; this view draws them and sends back
// what the user asks for (filter, sort, page, selection, metric, show all). Every value from the store is
// put into the page with textContent, never as HTML.

function h(tag, attrs, children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const child of children || []) if (child) el.appendChild(child);
  return el;
}

function render({ model, el }) {
  el.classList.add("jt-runs");

  const filterInput = h("input", {
    class: "jt-filter", type: "text", spellcheck: "false",
  });
  const applyButton = h("button", { class: "jt-apply", text: "Filter" });
  const clearButton = h("button", { class: "jt-clear", text: "Clear" });
  const filterError = h("div", { class: "jt-filter-error" });
  const summary = h("span", { class: "jt-summary" });
  const toggleAll = h("input", { type: "checkbox", class: "jt-show-all" });
  const toggleLabel = h("label", { class: "jt-toggle" }, [toggleAll, h("span", { class: "jt-toggle-text" })]);
  const metricSelect = h("select", { class: "jt-metric-select" });
  const metricLabel = h("label", { class: "jt-metric-label" }, [h("span", { text: "metric " }), metricSelect]);
  const prev = h("button", { class: "jt-prev", text: "\u2039 Prev" });
  const next = h("button", { class: "jt-next", text: "Next \u203a" });
  const pageInfo = h("span", { class: "jt-page-info" });
  const table = h("table", { class: "jt-table" });
  const diffBox = h("div", { class: "jt-diff-box" });

  el.appendChild(h("div", { class: "jt-bar" }, [filterInput, applyButton, clearButton]));
  el.appendChild(filterError);
  el.appendChild(h("div", { class: "jt-bar" }, [summary, toggleLabel, metricLabel,
    h("span", { class: "jt-pager" }, [prev, pageInfo, next])]));
  el.appendChild(h("div", { class: "jt-table-wrap" }, [table]));
  el.appendChild(diffBox);

  function send(name, value) {
    model.set(name, value);
    model.save_changes();
  }
  function submitFilter() {
    // A new request object each time, so the same text can be re-sent after an error.
    send("filter_request", { text: filterInput.value, n: Date.now() });
  }
  filterInput.addEventListener("keydown", (e) => { if (e.key === "Enter") submitFilter(); });
  applyButton.addEventListener("click", submitFilter);
  clearButton.addEventListener("click", () => { filterInput.value = ""; submitFilter(); });
  toggleAll.addEventListener("change", () => send("show_all", toggleAll.checked));
  metricSelect.addEventListener("change", () => send("metric", metricSelect.value));
  prev.addEventListener("click", () => send("page", Math.max(0, model.get("page") - 1)));
  next.addEventListener("click", () => send("page", Math.min(model.get("pages") - 1, model.get("page") + 1)));

  function drawTable() {
    const columns = model.get("columns");
    const rows = model.get("rows");
    const sort = model.get("sort") || {};
    const selected = new Set(model.get("selected"));
    table.replaceChildren();
    const head = h("tr");
    head.appendChild(h("th", { class: "jt-select-col", text: "" }));
    for (const col of columns) {
      let label = col.label;
      if (sort.column === col.key) label += sort.descending ? " \u25bc" : " \u25b2";
      const th = h("th", { class: "jt-col jt-" + col.group, title: col.key, "data-key": col.key, text: label });
      th.addEventListener("click", () => {
        const descending = sort.column === col.key ? !sort.descending : col.group === "info";
        send("sort", { column: col.key, descending });
      });
      head.appendChild(th);
    }
    table.appendChild(h("thead", {}, [head]));
    const body = h("tbody");
    for (const row of rows) {
      const box = h("input", { type: "checkbox", class: "jt-select" });
      box.checked = selected.has(row.id);
      box.addEventListener("change", () => {
        const now = new Set(model.get("selected"));
        if (box.checked) now.add(row.id); else now.delete(row.id);
        send("selected", Array.from(now));
      });
      const tr = h("tr", { class: "jt-row" + (selected.has(row.id) ? " jt-selected" : ""), "data-run-id": row.id },
        [h("td", { class: "jt-select-col" }, [box])]);
      row.cells.forEach((cell, i) => {
        const td = h("td", { class: "jt-" + columns[i].group, text: cell === null ? "" : String(cell) });
        if (columns[i].key === "status") td.classList.add("jt-status-" + String(cell).toLowerCase());
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    table.appendChild(body);
  }

  function drawBar() {
    const total = model.get("total");
    const page = model.get("page");
    const pages = model.get("pages");
    const nSel = model.get("selected").length;
    const known = model.get("total_known");
    summary.textContent = model.get("title") + ": " + total + (known ? "" : "+") + " run" +
      (total === 1 && known ? "" : "s") + (model.get("counting") ? " (counting\u2026)" : "") +
      (nSel ? ", " + nSel + " selected" : "");
    pageInfo.textContent = pages > 0 ? " page " + (page + 1) + " / " + pages + (known ? "" : "+") + " " : " ";
    prev.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    toggleAll.checked = model.get("show_all");
    const hidden = model.get("hidden");
    toggleLabel.lastChild.textContent = model.get("show_all")
      ? " all columns" : " all columns (" + hidden + " constant hidden)";
    filterInput.placeholder = "filter, e.g. " + model.get("filter_hint") + "   (Enter)";
    filterError.textContent = model.get("filter_error");
    filterError.style.display = model.get("filter_error") ? "block" : "none";
    if (document.activeElement !== filterInput) filterInput.value = model.get("filter_text");
    const metrics = model.get("metrics");
    const current = model.get("metric");
    metricSelect.replaceChildren();
    for (const m of metrics) {
      const opt = h("option", { value: m, text: m.replace(/^metrics\./, "") });
      if (m === current) opt.selected = true;
      metricSelect.appendChild(opt);
    }
    metricLabel.style.display = metrics.length ? "" : "none";
  }

  function drawDiff() {
    const diff = model.get("diff");
    diffBox.replaceChildren();
    if (!diff || !diff.a) {
      diffBox.appendChild(h("div", { class: "jt-hint", text: "Select two runs to diff them; selected runs' curves are overlaid below." }));
      return;
    }
    diffBox.appendChild(h("div", { class: "jt-diff-title", text: "diff: " + diff.a.label + "  vs  " + diff.b.label }));
    const t = h("table", { class: "jt-diff-table" });
    t.appendChild(h("thead", {}, [h("tr", {}, [h("th", { text: "" }), h("th", { text: diff.a.label }),
      h("th", { text: diff.b.label }), h("th", { text: "" })])]));
    const body = h("tbody");
    const section = (name) => body.appendChild(h("tr", { class: "jt-diff-section" }, [h("th", { colspan: "4", text: name })]));
    // Changed rows first (the kernel sorts them so), unchanged ones folded into one line below the table.
    const folded = [];
    const changedParams = diff.params.filter((p) => p.changed);
    if (changedParams.length) section("params");
    for (const p of changedParams) {
      body.appendChild(h("tr", { class: "jt-changed" }, [h("td", { text: p.key }),
        h("td", { text: p.a === null ? "-" : p.a }), h("td", { text: p.b === null ? "-" : p.b }),
        h("td", { text: "changed" })]));
    }
    const sameParams = diff.params.filter((p) => !p.changed).map((p) => p.key);
    if (sameParams.length) folded.push("params " + sameParams.join(", "));
    const changedMetrics = diff.metrics.filter((m) => m.changed);
    if (changedMetrics.length) section("metrics");
    for (const m of changedMetrics) {
      const cls = m.better === true ? "jt-better" : m.better === false ? "jt-worse" : "jt-neutral";
      body.appendChild(h("tr", {}, [h("td", { text: m.key }), h("td", { text: m.a_text }),
        h("td", { text: m.b_text }), h("td", { class: cls, text: m.delta_text })]));
    }
    const sameMetrics = diff.metrics.filter((m) => !m.changed).map((m) => m.key);
    if (sameMetrics.length) folded.push("metrics " + sameMetrics.join(", "));
    t.appendChild(body);
    diffBox.appendChild(t);
    if (folded.length) {
      diffBox.appendChild(h("details", { class: "jt-same" }, [h("summary", { text: "same in both" }),
        h("span", { text: folded.join("; ") })]));
    }
    if (diff.code_missing) {
      diffBox.appendChild(h("div", { class: "jt-code-note", text: "cell code: not logged for one of the runs" }));
    } else if (diff.code_same) {
      diffBox.appendChild(h("div", { class: "jt-code-note", text: "cell code: same" }));
    } else {
      const pre = h("pre", { class: "jt-code-diff" });
      for (const line of diff.code_diff) {
        const cls = line.startsWith("+") ? "jt-add" : line.startsWith("-") ? "jt-del" : "";
        pre.appendChild(h("span", { class: cls, text: line + "\n" }));
      }
      diffBox.appendChild(pre);
    }
  }

  // The figure beside this table sizes itself to its cell (plotly's responsive config listens to window
  // resizes): tell it when the cell's width is known or changes.
  if (typeof ResizeObserver !== "undefined") {
    let width = 0;
    const observer = new ResizeObserver((entries) => {
      const now = Math.round(entries[0].contentRect.width);
      if (now && now !== width) { width = now; window.dispatchEvent(new Event("resize")); }
    });
    observer.observe(el);
  }

  function drawAll() { drawBar(); drawTable(); drawDiff(); }
  drawAll();
  model.on("change:rows", drawAll);
  model.on("change:columns", drawTable);
  model.on("change:sort", drawTable);
  model.on("change:selected", () => { drawBar(); drawTable(); });
  for (const name of ["total", "total_known", "counting", "page", "pages", "show_all", "hidden", "filter_error", "filter_text", "metrics", "metric"]) {
    model.on("change:" + name, drawBar);
  }
  model.on("change:diff", drawDiff);
}

export default { render };
