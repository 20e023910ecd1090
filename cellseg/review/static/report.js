// cellseg review report: builds the overview (grid and table), the detail view and the training-run section from the
// JSON in #report-data. Plain ES2020, no framework, no build step. Every piece of data reaches the page through
// textContent or setAttribute, never as markup, so a file name or a note cannot run anything.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const images = Array.isArray(data.images) ? data.images : [];
  const hasTruth = Boolean(data.has_truth);
  const flagRules = data.flag_rules && typeof data.flag_rules === "object" ? data.flag_rules : {};

  // lookup tables without a prototype: a flag code such as "constructor" finds nothing in them
  const FLAG_LABELS = {
    __proto__: null,
    empty: "Empty mask",
    failed: "Failed",
    low_dice: "Low Dice",
    count: "Object count",
    area: "Object area",
    low_confidence: "Low confidence",
    cut: "Cut by tiles",
    border: "On the border",
  };
  const FLAG_ORDER = Object.keys(FLAG_LABELS);
  const SEVERE_FLAGS = new Set(["empty", "failed", "low_dice"]);
  const DECISIONS = ["accept", "needs-fix", "reject"];
  const DECISION_LABELS = { __proto__: null, accept: "Accepted", "needs-fix": "Needs fix", reject: "Rejected" };
  const DECISION_KEYS = { __proto__: null, a: "accept", f: "needs-fix", r: "reject" };
  const LAYER_KINDS = ["probability", "mask", "contours", "truth"];
  const LAYER_KEYS = { __proto__: null, m: "mask", c: "contours", h: "probability", t: "truth" };
  const FLAG_FILTER_ANY = "*any";
  const FLAG_FILTER_NONE = "*none";
  const THUMBNAIL_SIZE = 256;
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------------- small helpers

  /** An element with attributes (set with setAttribute) and children (strings become text nodes). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** A report-relative path (thumbs/000012.png) or null: nothing with a scheme, a leading slash or "..". */
  function safePath(path) {
    if (typeof path !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/.test(path)) return null;
    return path.split("/").includes("..") ? null : path;
  }

  const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
  const formatInteger = (value) => (isNumber(value) ? String(Math.round(value)) : null);
  const formatArea = (value) => (isNumber(value) ? value.toFixed(Math.abs(value) >= 100 ? 0 : 1) : null);
  const formatFraction = (value) => (isNumber(value) ? value.toFixed(3) : null);

  function formatMetric(value) {
    if (!isNumber(value)) return value === null || value === undefined ? "–" : String(value);
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toPrecision(4);
  }

  /** A table cell or definition showing a number, or a muted dash for a missing one. */
  function numberNode(tag, text, attributes) {
    if (text !== null) return el(tag, attributes, text);
    return el(tag, { ...attributes, class: `${attributes?.class ?? ""} null`.trim() }, "–");
  }

  const flagLabel = (code) => FLAG_LABELS[code] ?? String(code);
  const ruleOf = (code) => (Object.prototype.hasOwnProperty.call(flagRules, code) ? String(flagRules[code]) : null);
  const flagSeverity = (code) => (SEVERE_FLAGS.has(code) ? "severe" : "normal");

  function flagBadge(flag) {
    const attributes = { class: "badge", "data-severity": flagSeverity(flag.code), title: flag.reason };
    return el("span", attributes, flagLabel(flag.code));
  }

  function readJson(key) {
    try {
      const raw = window.localStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch (error) {
      return null;
    }
  }

  // ---------------------------------------------------------------------------------------------- decisions

  const storageKey = `cellseg-review:${String(data.report_id ?? data.prediction_dir ?? "report")}`;
  const prefsKey = "cellseg-review:preferences";
  const validDecision = (value) => (DECISIONS.includes(value) ? value : null);

  function storageWorks() {
    try {
      const probe = `${storageKey}:probe`;
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return true;
    } catch (error) {
      return false;
    }
  }

  /** Decisions made in this browser, by image name (a Map: a name like "__proto__" is just a key). */
  function loadStoredDecisions() {
    const stored = new Map();
    const saved = readJson(storageKey);
    if (!saved || !Array.isArray(saved.entries)) return stored;
    for (const item of saved.entries) {
      if (!Array.isArray(item) || typeof item[0] !== "string" || !item[1] || typeof item[1] !== "object") continue;
      const note = typeof item[1].note === "string" ? item[1].note : "";
      stored.set(item[0], { decision: validDecision(item[1].decision), note, updated: String(item[1].updated ?? "") });
    }
    return stored;
  }

  let storageOk = storageWorks();
  let storedDecisions = loadStoredDecisions();
  let saveTimer = null;

  function saveDecisions() {
    window.clearTimeout(saveTimer);
    saveTimer = null;
    if (!storageOk) return;
    try {
      const entries = Array.from(storedDecisions.entries());
      window.localStorage.setItem(storageKey, JSON.stringify({ version: 1, entries }));
    } catch (error) {
      storageOk = false;
      renderStorageNote();
    }
  }

  function saveDecisionsSoon() {
    window.clearTimeout(saveTimer);
    saveTimer = window.setTimeout(saveDecisions, 300);
  }

  function embeddedDecision(image) {
    const embedded = image.decision;
    if (!embedded || typeof embedded !== "object") return { decision: null, note: "" };
    return { decision: validDecision(embedded.decision), note: typeof embedded.note === "string" ? embedded.note : "" };
  }

  /** The image's decision and note: this browser's entry when there is one, else the one the report was built with. */
  const decisionOf = (entry) => storedDecisions.get(entry.name) ?? embeddedDecision(entry.image);

  function storeDecision(entry, decision, note) {
    storedDecisions.set(entry.name, { decision, note, updated: new Date().toISOString() });
  }

  // ---------------------------------------------------------------------------------------------- entries

  const entries = images.map((image, index) => {
    const flags = Array.isArray(image.flags)
      ? image.flags
          .filter((flag) => flag && typeof flag.code === "string")
          .map((flag) => ({ code: flag.code, reason: typeof flag.reason === "string" ? flag.reason : "" }))
      : [];
    const name = typeof image.name === "string" ? image.name : String(image.name ?? "");
    return {
      image,
      index,
      id: String(image.id ?? index),
      name,
      nameLower: name.toLowerCase(),
      flags,
      flagCodes: new Set(flags.map((flag) => flag.code)),
      layers: image.layers && typeof image.layers === "object" ? image.layers : {},
      visible: true,
      row: null,
      card: null,
      rowDecision: null,
      cardDecision: null,
    };
  });
  const entriesById = new Map(entries.map((entry) => [entry.id, entry]));

  const COLUMNS = [
    { key: null, label: "", className: "thumb" },
    { key: "name", label: "Name", className: "name" },
    { key: "objects", label: "Objects", className: "number", format: formatInteger },
    { key: "median_area", label: "Median area", className: "number", format: formatArea },
    { key: "mean_confidence", label: "Mean confidence", className: "number", format: formatFraction },
    { key: "border_objects", label: "Border", className: "number", format: formatInteger },
    { key: "cut_objects", label: "Cut", className: "number", format: formatInteger },
    ...(hasTruth
      ? [
          { key: "dice", label: "Dice", className: "number", format: formatFraction },
          { key: "f1", label: "F1", className: "number", format: formatFraction },
        ]
      : []),
    { key: "flags", label: "Flags", className: "flags" },
    { key: "decision", label: "Decision", className: "decision" },
  ];
  const SORT_LABELS = { __proto__: null, id: "Report order", flags: "Number of flags" };

  /** What an entry sorts by under `key`: a number, a string, or null (always last). */
  function sortValue(entry, key) {
    if (key === "id") return entry.index;
    if (key === "name") return entry.name;
    if (key === "flags") return entry.flags.length;
    if (key === "decision") {
      const decision = decisionOf(entry).decision;
      return decision === null ? null : DECISIONS.indexOf(decision);
    }
    const value = entry.image[key];
    return isNumber(value) ? value : null;
  }

  // ---------------------------------------------------------------------------------------------- state

  const prefs = readJson(prefsKey) || {};
  const state = {
    view: prefs.view === "table" ? "table" : "grid",
    sortKey: "id",
    sortDirection: 1,
    filterName: "",
    filterFlag: "",
    filterDecision: "",
    order: entries.slice(),
    unordered: new Set(), // views whose nodes are not yet in `order`
    current: null,
    pushedHistory: false,
    returnFocus: null,
    layers: { mask: false, contours: true, probability: false, truth: false, ...(prefs.layers || {}) },
    opacity: isNumber(prefs.opacity) ? prefs.opacity : 100,
  };

  function savePrefs() {
    if (!storageOk) return;
    try {
      const saved = { view: state.view, layers: state.layers, opacity: state.opacity };
      window.localStorage.setItem(prefsKey, JSON.stringify(saved));
    } catch (error) {
      // preferences are a convenience; decisions report their own storage problems
    }
  }

  // ---------------------------------------------------------------------------------------------- header

  function renderHeader() {
    document.title = String(data.title ?? "cellseg review");
    $("report-title").textContent = String(data.title ?? "cellseg review");
    const parts = [];
    if (data.prediction_dir) parts.push(String(data.prediction_dir));
    parts.push(`${entries.length} image${entries.length === 1 ? "" : "s"}`);
    if (hasTruth) parts.push("with ground truth");
    if (data.created) parts.push(`created ${String(data.created).replace("T", " ").replace(/\.\d+/, "")}`);
    if (data.cellseg_version) parts.push(`cellseg ${String(data.cellseg_version)}`);
    $("report-meta").textContent = parts.join(" · ");

    const rules = $("flag-rules-list");
    const codes = Object.keys(flagRules);
    for (const code of codes) {
      rules.append(el("dt", {}, flagLabel(code)), el("dd", {}, ruleOf(code)));
    }
    $("flag-rules").hidden = codes.length === 0;

    // what cellseg could not find or use while building the report, one line each
    const notes = Array.isArray(data.notes) ? data.notes.map((note) => String(note)) : [];
    for (const note of notes) $("report-notes-list").append(el("li", {}, note));
    const plural = notes.length === 1 ? "" : "s";
    $("report-notes-summary").textContent = `${notes.length} note${plural} from building the report`;
    $("report-notes").hidden = notes.length === 0;
    renderStorageNote();
  }

  function renderStorageNote() {
    const note = $("storage-note");
    if (storageOk) {
      note.textContent =
        "Decisions are kept in this browser for this report. Export review.csv to hand them to cellseg " +
        "(cellseg review --decisions, cellseg fit --data.exclude).";
      note.classList.remove("warning");
    } else {
      note.textContent =
        "This browser does not let the page keep decisions (local storage is blocked): export review.csv " +
        "before closing the page.";
      note.classList.add("warning");
    }
  }

  /** Flag codes present in the run, known ones in a fixed order, then any others alphabetically. */
  function presentFlagCodes() {
    const counts = new Map();
    for (const entry of entries) for (const code of entry.flagCodes) counts.set(code, (counts.get(code) ?? 0) + 1);
    const known = FLAG_ORDER.filter((code) => counts.has(code));
    const other = Array.from(counts.keys()).filter((code) => !FLAG_ORDER.includes(code)).sort();
    return { codes: [...known, ...other], counts };
  }

  function renderFlagControls() {
    const { codes, counts } = presentFlagCodes();
    const unflagged = entries.filter((entry) => entry.flags.length === 0).length;
    const flagged = entries.length - unflagged;

    const select = $("filter-flag");
    select.append(
      el("option", { value: "" }, "Any"),
      el("option", { value: FLAG_FILTER_ANY }, `Flagged (${flagged})`),
      el("option", { value: FLAG_FILTER_NONE }, `Not flagged (${unflagged})`),
    );
    for (const code of codes) select.append(el("option", { value: code }, `${flagLabel(code)} (${counts.get(code)})`));

    const chips = $("flag-chips");
    for (const code of codes) {
      const title = ruleOf(code) ?? flagLabel(code);
      const attributes = { type: "button", class: "chip", "data-code": code, "data-severity": flagSeverity(code) };
      chips.append(
        el(
          "button",
          { ...attributes, "aria-pressed": "false", title },
          el("span", {}, flagLabel(code)),
          el("span", { class: "chip-count" }, String(counts.get(code))),
        ),
      );
    }
    chips.append(
      el(
        "button",
        { type: "button", class: "chip", "data-code": FLAG_FILTER_NONE, "aria-pressed": "false", title: "No flag" },
        el("span", {}, "Not flagged"),
        el("span", { class: "chip-count" }, String(unflagged)),
      ),
    );
    chips.addEventListener("click", (event) => {
      const chip = event.target.closest("button.chip");
      if (!chip) return;
      const code = chip.getAttribute("data-code");
      setFlagFilter(state.filterFlag === code ? "" : code);
    });

    const decision = $("filter-decision");
    decision.append(el("option", { value: "" }, "Any"), el("option", { value: "undecided" }, "Undecided"));
    for (const value of DECISIONS) decision.append(el("option", { value }, DECISION_LABELS[value]));
  }

  function setFlagFilter(value) {
    state.filterFlag = value;
    $("filter-flag").value = value;
    for (const chip of $("flag-chips").querySelectorAll("button.chip")) {
      chip.setAttribute("aria-pressed", String(chip.getAttribute("data-code") === value));
    }
    applyFilters();
  }

  function renderDecisionSummary() {
    const counts = { accept: 0, "needs-fix": 0, reject: 0 };
    for (const entry of entries) {
      const decision = decisionOf(entry).decision;
      if (decision) counts[decision] += 1;
    }
    const decided = counts.accept + counts["needs-fix"] + counts.reject;
    const total = Math.max(entries.length, 1);
    const bar = el("div", { class: "progress", role: "img", "aria-label": `${decided} of ${entries.length} decided` });
    for (const decision of DECISIONS) {
      const part = el("span", { class: decision, title: `${DECISION_LABELS[decision]}: ${counts[decision]}` });
      part.style.width = `${(100 * counts[decision]) / total}%`;
      bar.append(part);
    }
    const text = [`${decided} of ${entries.length} decided`];
    if (decided) {
      text.push(`${counts.accept} accepted`, `${counts["needs-fix"]} need fixing`, `${counts.reject} rejected`);
    }
    $("decision-summary").replaceChildren(bar, el("span", {}, text.join(" · ")));
  }

  // ---------------------------------------------------------------------------------------------- overview

  function thumbnailBox(entry, className) {
    const box = el("div", { class: className });
    const path = safePath(entry.image.thumbnail);
    if (!path) {
      box.append(el("span", { class: "thumb-missing" }, "no image"));
      return box;
    }
    const width = isNumber(entry.image.width) && entry.image.width > 0 ? entry.image.width : THUMBNAIL_SIZE;
    const height = isNumber(entry.image.height) && entry.image.height > 0 ? entry.image.height : THUMBNAIL_SIZE;
    const scale = Math.min(1, THUMBNAIL_SIZE / Math.max(width, height));
    box.append(
      el("img", {
        src: path,
        alt: "",
        loading: "lazy",
        decoding: "async",
        width: Math.max(1, Math.round(width * scale)),
        height: Math.max(1, Math.round(height * scale)),
        draggable: "false",
      }),
    );
    return box;
  }

  function decisionBadge(decision) {
    if (!decision) return "";
    return el("span", { class: "badge decision", "data-decision": decision }, DECISION_LABELS[decision]);
  }

  function buildRow(entry) {
    const image = entry.image;
    const row = el("tr", { "data-id": entry.id, tabindex: "0" });
    for (const column of COLUMNS) {
      if (column.className === "thumb") {
        row.append(el("td", { class: "thumb" }, thumbnailBox(entry, "thumb-box")));
      } else if (column.key === "name") {
        const cell = el("td", { class: "name", title: entry.name }, entry.name);
        if (image.status && image.status !== "ok") {
          const status = image.status === "failed" ? "status-failed" : "status-other";
          cell.append(" ", el("span", { class: status }, `(${image.status})`));
        }
        row.append(cell);
      } else if (column.key === "flags") {
        const list = el("ul");
        for (const flag of entry.flags) {
          list.append(el("li", {}, flagBadge(flag), el("span", { class: "reason" }, flag.reason)));
        }
        row.append(el("td", { class: "flags" }, list));
      } else if (column.key === "decision") {
        entry.rowDecision = el("td", { class: "decision" });
        row.append(entry.rowDecision);
      } else {
        row.append(numberNode("td", column.format(image[column.key]), { class: column.className }));
      }
    }
    return row;
  }

  function buildCard(entry) {
    const image = entry.image;
    const numbers = [];
    const objects = formatInteger(image.objects);
    if (objects !== null) numbers.push(`${objects} object${objects === "1" ? "" : "s"}`);
    const area = formatArea(image.median_area);
    if (area !== null) numbers.push(`median ${area} px`);
    const dice = formatFraction(image.dice);
    if (dice !== null) numbers.push(`Dice ${dice}`);
    const statusText = image.status && image.status !== "ok" ? String(image.status) : "";
    entry.cardDecision = el("span");
    const badges = el("div", { class: "card-badges" });
    for (const flag of entry.flags) badges.append(flagBadge(flag));
    badges.append(entry.cardDecision);
    return el(
      "article",
      { class: "card", "data-id": entry.id, tabindex: "0" },
      thumbnailBox(entry, "thumb-box"),
      el(
        "div",
        { class: "card-body" },
        el("div", { class: "card-name", title: entry.name }, entry.name),
        el("div", { class: "card-numbers" }, numbers.join(" · ") || statusText),
        badges,
      ),
    );
  }

  /** Show an entry's decision on its row and card. */
  function renderEntryDecision(entry) {
    const decision = decisionOf(entry).decision;
    for (const node of [entry.row, entry.card]) {
      if (decision) node.setAttribute("data-decision", decision);
      else node.removeAttribute("data-decision");
    }
    entry.rowDecision.replaceChildren(decisionBadge(decision));
    entry.cardDecision.replaceChildren(decisionBadge(decision));
  }

  function buildOverview() {
    const head = $("table-head");
    for (const column of COLUMNS) {
      if (!column.key) {
        head.append(el("th", { class: column.className, scope: "col", "aria-label": "Thumbnail" }));
        continue;
      }
      head.append(
        el(
          "th",
          { class: column.className, scope: "col", "data-key": column.key, "aria-sort": "none" },
          el(
            "button",
            { type: "button", title: `Sort by ${column.label.toLowerCase()}` },
            column.label,
            el("span", { class: "arrow" }),
          ),
        ),
      );
    }

    const sortSelect = $("sort-key");
    sortSelect.append(el("option", { value: "id" }, SORT_LABELS.id));
    for (const column of COLUMNS) {
      if (column.key) sortSelect.append(el("option", { value: column.key }, SORT_LABELS[column.key] ?? column.label));
    }

    const rows = document.createDocumentFragment();
    const cards = document.createDocumentFragment();
    for (const entry of entries) {
      entry.row = buildRow(entry);
      entry.card = buildCard(entry);
      renderEntryDecision(entry);
      rows.append(entry.row);
      cards.append(entry.card);
    }
    $("table-body").append(rows);
    $("grid").append(cards);
  }

  /**
   * Put a view's existing nodes in the current order: nothing is rebuilt and no thumbnail decoded again. Only the
   * view on show is re-ordered; the other one is when it is shown.
   */
  function placeNodes(view) {
    if (!state.unordered.has(view)) return;
    state.unordered.delete(view);
    const nodes = document.createDocumentFragment();
    for (const entry of state.order) nodes.append(view === "grid" ? entry.card : entry.row);
    (view === "grid" ? $("grid") : $("table-body")).append(nodes);
  }

  function setView(view) {
    state.view = view;
    placeNodes(view);
    $("grid").hidden = view !== "grid";
    $("table-wrap").hidden = view !== "table";
    $("view-grid").setAttribute("aria-pressed", String(view === "grid"));
    $("view-table").setAttribute("aria-pressed", String(view === "table"));
    savePrefs();
  }

  function setSort(key, direction) {
    state.sortKey = key;
    state.sortDirection = direction;
    const compare = (a, b) => {
      const valueA = sortValue(a, key);
      const valueB = sortValue(b, key);
      if (valueA === null || valueB === null) {
        if (valueA === valueB) return a.index - b.index;
        return valueA === null ? 1 : -1; // missing values last, either way
      }
      const order = typeof valueA === "string" ? collator.compare(valueA, valueB) : valueA - valueB;
      return order === 0 ? a.index - b.index : order * direction;
    };
    state.order = entries.slice().sort(compare);
    state.unordered = new Set(["grid", "table"]);
    placeNodes(state.view);

    for (const th of $("table-head").querySelectorAll("th[data-key]")) {
      const sorted = th.getAttribute("data-key") === key;
      th.setAttribute("aria-sort", sorted ? (direction > 0 ? "ascending" : "descending") : "none");
    }
    $("sort-key").value = key;
    const button = $("sort-direction");
    button.textContent = direction > 0 ? "↑ Ascending" : "↓ Descending";
    button.setAttribute("aria-label", direction > 0 ? "Ascending; reverse the order" : "Descending; reverse the order");
    if (state.current) renderPosition();
  }

  function matches(entry) {
    if (state.filterName && !entry.nameLower.includes(state.filterName)) return false;
    const flag = state.filterFlag;
    if (flag === FLAG_FILTER_ANY && entry.flags.length === 0) return false;
    if (flag === FLAG_FILTER_NONE && entry.flags.length > 0) return false;
    if (flag && flag !== FLAG_FILTER_ANY && flag !== FLAG_FILTER_NONE && !entry.flagCodes.has(flag)) return false;
    if (state.filterDecision) {
      const decision = decisionOf(entry).decision;
      if (state.filterDecision === "undecided" ? decision !== null : decision !== state.filterDecision) return false;
    }
    return true;
  }

  function applyFilters() {
    let shown = 0;
    for (const entry of entries) {
      const visible = matches(entry);
      if (visible !== entry.visible) {
        entry.visible = visible;
        entry.row.hidden = !visible;
        entry.card.hidden = !visible;
      }
      if (visible) shown += 1;
    }
    $("count").textContent = `${shown} of ${entries.length} image${entries.length === 1 ? "" : "s"}`;
    $("empty-result").hidden = shown > 0 || entries.length === 0;
    if (state.current) renderPosition();
  }

  function bindOverview() {
    $("view-grid").addEventListener("click", () => setView("grid"));
    $("view-table").addEventListener("click", () => setView("table"));
    $("table-head").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-key]");
      if (!th) return;
      const key = th.getAttribute("data-key");
      setSort(key, key === state.sortKey ? -state.sortDirection : 1);
    });
    $("sort-key").addEventListener("change", (event) => setSort(event.target.value, state.sortDirection));
    $("sort-direction").addEventListener("click", () => setSort(state.sortKey, -state.sortDirection));

    let nameTimer = null;
    $("filter-name").addEventListener("input", (event) => {
      window.clearTimeout(nameTimer);
      const value = event.target.value.trim().toLowerCase();
      nameTimer = window.setTimeout(() => {
        state.filterName = value;
        applyFilters();
      }, entries.length > 300 ? 120 : 0);
    });
    $("filter-flag").addEventListener("change", (event) => setFlagFilter(event.target.value));
    $("filter-decision").addEventListener("change", (event) => {
      state.filterDecision = event.target.value;
      applyFilters();
    });

    const openFrom = (event) => {
      const node = event.target.closest("[data-id]");
      const entry = node && entriesById.get(node.getAttribute("data-id"));
      if (entry) openDetail(entry, { history: "push" });
    };
    for (const container of [$("table-body"), $("grid")]) {
      container.addEventListener("click", openFrom);
      container.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target.matches("[data-id]")) openFrom(event);
      });
    }
    $("export").addEventListener("click", exportCsv);

    const toolbar = $("toolbar");
    const setToolbarHeight = () => {
      document.documentElement.style.setProperty("--toolbar-height", `${toolbar.offsetHeight}px`);
    };
    if (window.ResizeObserver) new ResizeObserver(setToolbarHeight).observe(toolbar);
    setToolbarHeight();
  }

  // ---------------------------------------------------------------------------------------------- review.csv

  /** One CSV field per RFC 4180: quoted when it holds a comma, quote or line break, or starts like a formula. */
  function csvField(value) {
    const text = String(value ?? "");
    return /[",\r\n]/.test(text) || /^[=+\-@\t\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function reviewCsv() {
    const lines = [["name", "decision", "note", "flags"]];
    for (const entry of entries) {
      const { decision, note } = decisionOf(entry);
      if (decision) lines.push([entry.name, decision, note, entry.flags.map((flag) => flag.code).join(";")]);
    }
    return lines.map((fields) => fields.map(csvField).join(",")).join("\r\n") + "\r\n";
  }

  function exportCsv() {
    flushNote();
    saveDecisions();
    const url = URL.createObjectURL(new Blob([reviewCsv()], { type: "text/csv;charset=utf-8" }));
    const link = el("a", { href: url, download: "review.csv", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 5000);
  }

  // ---------------------------------------------------------------------------------------------- detail view

  const detail = $("detail");
  const viewport = $("viewport");
  const stage = $("stage");
  const stageImage = $("stage-image");
  const layerImages = {
    probability: $("stage-probability"),
    mask: $("stage-mask"),
    contours: $("stage-contours"),
    truth: $("stage-truth"),
  };
  const layerBoxes = {
    probability: $("layer-probability"),
    mask: $("layer-mask"),
    contours: $("layer-contours"),
    truth: $("layer-truth"),
  };
  const view = { scale: 1, x: 0, y: 0, width: 1, height: 1, fitted: true };
  let noteEntry = null;

  function imageSize(entry) {
    const image = entry.image;
    const known = (value) => isNumber(value) && value > 0;
    const width = known(image.width) ? image.width : stageImage.naturalWidth || THUMBNAIL_SIZE;
    const height = known(image.height) ? image.height : stageImage.naturalHeight || THUMBNAIL_SIZE;
    return { width, height };
  }

  function applyView() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    stage.classList.toggle("pixelated", view.scale >= 2);
    $("zoom-level").textContent = `${Math.round(view.scale * 100)}%`;
  }

  function fitView() {
    const box = viewport.getBoundingClientRect();
    const scale = Math.min(box.width / view.width, box.height / view.height) * 0.97;
    view.scale = scale > 0 && Number.isFinite(scale) ? scale : 1;
    view.x = (box.width - view.width * view.scale) / 2;
    view.y = (box.height - view.height * view.scale) / 2;
    view.fitted = true;
    applyView();
  }

  function fitScale() {
    const box = viewport.getBoundingClientRect();
    return Math.min(box.width / view.width, box.height / view.height) || 1;
  }

  /** Zoom by `factor` keeping the point (cx, cy) of the viewport where it is. */
  function zoomAt(factor, cx, cy) {
    const low = Math.min(fitScale() * 0.25, 1);
    const scale = Math.min(Math.max(view.scale * factor, low), 64);
    const ratio = scale / view.scale;
    view.x = cx - (cx - view.x) * ratio;
    view.y = cy - (cy - view.y) * ratio;
    view.scale = scale;
    view.fitted = false;
    applyView();
  }

  function zoomAtCentre(factor) {
    const box = viewport.getBoundingClientRect();
    zoomAt(factor, box.width / 2, box.height / 2);
  }

  function actualSize() {
    zoomAtCentre(1 / view.scale);
  }

  function renderLayers() {
    const entry = state.current;
    if (!entry) return;
    for (const kind of LAYER_KINDS) {
      const path = safePath(entry.layers[kind]);
      const box = layerBoxes[kind];
      box.checked = Boolean(state.layers[kind]);
      box.disabled = !path;
      box.closest("label").classList.toggle("disabled", !path);
      const image = layerImages[kind];
      const show = Boolean(path && state.layers[kind]);
      // a layer is loaded only once it is shown
      if (show && image.getAttribute("src") !== path) image.setAttribute("src", path);
      image.hidden = !show;
    }
    for (const kind of ["probability", "mask"]) layerImages[kind].style.opacity = String(state.opacity / 100);
    $("layer-opacity").value = String(state.opacity);
  }

  function renderPosition() {
    const entry = state.current;
    const visible = state.order.filter((candidate) => candidate.visible);
    const position = visible.indexOf(entry);
    $("detail-position").textContent =
      position >= 0 ? `${position + 1} of ${visible.length}` : `not in the filtered list (${visible.length} shown)`;
    $("detail-prev").disabled = !neighbour(-1);
    $("detail-next").disabled = !neighbour(1);
  }

  function renderDecisionControls() {
    const { decision, note } = decisionOf(state.current);
    for (const button of detail.querySelectorAll("button[data-decision]")) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-decision") === decision));
    }
    const noteBox = $("note");
    if (noteBox.value !== note) noteBox.value = note;
  }

  function renderNumbers(entry) {
    const image = entry.image;
    const size = isNumber(image.width) && isNumber(image.height) ? `${image.width} × ${image.height}` : null;
    const rows = [
      ["Objects", formatInteger(image.objects)],
      ["Median area (px)", formatArea(image.median_area)],
      ["Mean confidence", formatFraction(image.mean_confidence)],
      ["Objects on the border", formatInteger(image.border_objects)],
      ["Objects cut by tiles", formatInteger(image.cut_objects)],
      ...(hasTruth ? [["Dice", formatFraction(image.dice)], ["F1", formatFraction(image.f1)]] : []),
      ["Size (px)", size],
      ["Status", image.status ? String(image.status) : null],
    ];
    const list = $("detail-numbers");
    list.replaceChildren();
    for (const [label, value] of rows) list.append(el("dt", {}, label), numberNode("dd", value));

    const flags = $("detail-flags");
    flags.replaceChildren();
    for (const flag of entry.flags) {
      flags.append(el("li", {}, el("span", {}, flagBadge(flag)), el("span", { class: "reason" }, flag.reason)));
    }
    if (entry.flags.length === 0) flags.append(el("li", { class: "none" }, "No flag"));
  }

  function preload(entry) {
    const path = entry && safePath(entry.layers.image);
    if (path) new Image().src = path;
  }

  function openDetail(entry, { history = "none" } = {}) {
    flushNote();
    const wasOpen = Boolean(state.current);
    if (!wasOpen) state.returnFocus = document.activeElement;
    state.current = entry;
    detail.hidden = false;
    document.body.classList.add("detail-open");

    $("detail-name").textContent = entry.name;
    $("detail-name").setAttribute("title", entry.name);
    const path = safePath(entry.layers.image);
    if (path) {
      if (stageImage.getAttribute("src") !== path) stageImage.setAttribute("src", path);
      stageImage.hidden = false;
    } else {
      stageImage.removeAttribute("src");
      stageImage.hidden = true;
    }
    $("stage-missing").hidden = Boolean(path);
    const size = imageSize(entry);
    view.width = size.width;
    view.height = size.height;
    stage.style.width = `${size.width}px`;
    stage.style.height = `${size.height}px`;
    renderLayers();
    renderNumbers(entry);
    renderDecisionControls();
    renderPosition();
    fitView();
    noteEntry = entry;

    const target = `#image/${encodeURIComponent(entry.id)}`;
    try {
      if (history === "push" && location.hash !== target) {
        window.history.pushState({ image: entry.id }, "", target);
        state.pushedHistory = true;
      } else if (history === "replace" && location.hash !== target) {
        window.history.replaceState({ image: entry.id }, "", target);
      }
    } catch (error) {
      // some browsers refuse history changes on file:// pages; the view works without them
    }
    const focused = document.activeElement;
    if (!detail.contains(focused) || focused === $("note")) viewport.focus({ preventScroll: true });
    preload(neighbour(1));
    preload(neighbour(-1));
  }

  function closeDetail({ history = true } = {}) {
    if (!state.current) return;
    flushNote();
    state.current = null;
    noteEntry = null;
    detail.hidden = true;
    document.body.classList.remove("detail-open");
    if (history) {
      try {
        if (state.pushedHistory) window.history.back();
        else if (location.hash) window.history.replaceState(null, "", location.href.split("#")[0]);
      } catch (error) {
        // see openDetail
      }
    }
    state.pushedHistory = false;
    const focus = state.returnFocus;
    state.returnFocus = null;
    if (focus && focus.isConnected && typeof focus.focus === "function") focus.focus({ preventScroll: true });
  }

  /** The next (step 1) or previous (step -1) shown image in the current order, from the open one. */
  function neighbour(step) {
    const order = state.order;
    const start = order.indexOf(state.current);
    for (let index = start + step; index >= 0 && index < order.length; index += step) {
      if (order[index].visible) return order[index];
    }
    return null;
  }

  function move(step) {
    const entry = neighbour(step);
    if (entry) openDetail(entry, { history: "replace" });
  }

  function setDecision(decision, { toggle = false } = {}) {
    const entry = state.current;
    if (!entry) return;
    const current = decisionOf(entry);
    const next = toggle && current.decision === decision ? null : decision;
    storeDecision(entry, next, $("note").value);
    saveDecisions();
    renderEntryDecision(entry);
    renderDecisionControls();
    renderDecisionSummary();
    if (state.filterDecision) applyFilters();
    if (state.sortKey === "decision") setSort(state.sortKey, state.sortDirection);
  }

  /** Store the note being typed for the image it was typed for. */
  function flushNote() {
    if (!noteEntry) return;
    const note = $("note").value;
    const current = decisionOf(noteEntry);
    if (note !== current.note) {
      storeDecision(noteEntry, current.decision, note);
      saveDecisions();
    }
  }

  function toggleLayer(kind, on) {
    state.layers[kind] = on;
    savePrefs();
    renderLayers();
  }

  function bindDetail() {
    $("detail-close").addEventListener("click", () => closeDetail());
    $("detail-prev").addEventListener("click", () => move(-1));
    $("detail-next").addEventListener("click", () => move(1));
    $("zoom-in").addEventListener("click", () => zoomAtCentre(1.25));
    $("zoom-out").addEventListener("click", () => zoomAtCentre(0.8));
    $("zoom-fit").addEventListener("click", fitView);
    $("zoom-actual").addEventListener("click", actualSize);
    for (const kind of LAYER_KINDS) {
      layerBoxes[kind].addEventListener("change", (event) => toggleLayer(kind, event.target.checked));
    }
    $("layer-opacity").addEventListener("input", (event) => {
      state.opacity = Number(event.target.value);
      renderLayers();
      savePrefs();
    });
    for (const button of detail.querySelectorAll("button[data-decision]")) {
      button.addEventListener("click", () => setDecision(button.getAttribute("data-decision"), { toggle: true }));
    }
    $("note").addEventListener("input", () => {
      if (!noteEntry) return;
      const current = decisionOf(noteEntry);
      storeDecision(noteEntry, current.decision, $("note").value);
      saveDecisionsSoon();
    });
    $("note").addEventListener("change", flushNote);
    window.addEventListener("pagehide", () => {
      flushNote();
      saveDecisions();
    });

    stageImage.addEventListener("load", () => {
      // the image's own size when the data did not say it
      if (!state.current) return;
      const size = imageSize(state.current);
      if (size.width !== view.width || size.height !== view.height) {
        view.width = size.width;
        view.height = size.height;
        stage.style.width = `${size.width}px`;
        stage.style.height = `${size.height}px`;
        fitView();
      }
    });

    viewport.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const box = viewport.getBoundingClientRect();
        const pixels = event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
        const factor = Math.exp(-Math.max(-300, Math.min(300, pixels)) * 0.002);
        zoomAt(factor, event.clientX - box.left, event.clientY - box.top);
      },
      { passive: false },
    );
    let drag = null;
    viewport.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      drag = { pointer: event.pointerId, startX: event.clientX, startY: event.clientY, x: view.x, y: view.y };
      viewport.setPointerCapture(event.pointerId);
      viewport.classList.add("dragging");
    });
    viewport.addEventListener("pointermove", (event) => {
      if (!drag || event.pointerId !== drag.pointer) return;
      view.x = drag.x + event.clientX - drag.startX;
      view.y = drag.y + event.clientY - drag.startY;
      view.fitted = false;
      applyView();
    });
    const endDrag = (event) => {
      if (!drag || event.pointerId !== drag.pointer) return;
      drag = null;
      viewport.classList.remove("dragging");
    };
    viewport.addEventListener("pointerup", endDrag);
    viewport.addEventListener("pointercancel", endDrag);
    viewport.addEventListener("dblclick", (event) => {
      const box = viewport.getBoundingClientRect();
      zoomAt(2, event.clientX - box.left, event.clientY - box.top);
    });
    window.addEventListener("resize", () => {
      if (state.current && view.fitted) fitView();
    });

    document.addEventListener("keydown", onKey);
    window.addEventListener("popstate", routeFromHash);
    window.addEventListener("hashchange", routeFromHash);
    window.addEventListener("storage", (event) => {
      // another tab of the same report decided something
      if (event.key !== storageKey) return;
      storedDecisions = loadStoredDecisions();
      for (const entry of entries) renderEntryDecision(entry);
      renderDecisionSummary();
      if (state.current) renderDecisionControls();
      if (state.filterDecision) applyFilters();
    });
  }

  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing =
      target instanceof HTMLElement &&
      (target.isContentEditable || target.matches("textarea, select, input:not([type=checkbox]):not([type=button])"));
    if (!state.current) {
      if (event.key === "/" && !typing) {
        event.preventDefault();
        $("filter-name").focus();
      }
      return;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      if (typing) target.blur();
      else closeDetail();
      return;
    }
    if (typing) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const layer = LAYER_KEYS[key];
    if (key === "ArrowRight" || key === "n") move(1);
    else if (key === "ArrowLeft" || key === "p") move(-1);
    else if (DECISION_KEYS[key]) setDecision(DECISION_KEYS[key]);
    else if (layer && !layerBoxes[layer].disabled) toggleLayer(layer, !state.layers[layer]);
    else if (key === "+" || key === "=") zoomAtCentre(1.25);
    else if (key === "-") zoomAtCentre(0.8);
    else if (key === "0") fitView();
    else if (key === "1") actualSize();
    else return;
    event.preventDefault();
  }

  function routeFromHash() {
    const match = /^#image\/([^/]+)$/.exec(location.hash);
    const entry = match ? entriesById.get(decodeURIComponent(match[1])) : null;
    if (entry) {
      if (entry !== state.current) openDetail(entry);
    } else if (state.current) {
      state.pushedHistory = false;
      closeDetail({ history: false });
    }
  }

  // ---------------------------------------------------------------------------------------------- training run

  function renderRun() {
    const run = data.run;
    if (!run || typeof run !== "object") return;
    $("run-section").hidden = false;
    const link = $("run-link");
    link.hidden = false;
    link.addEventListener("click", () => $("run-section").scrollIntoView({ behavior: "smooth", block: "start" }));
    const about = [];
    if (run.folder) about.push(String(run.folder));
    if (typeof run.checkpoint === "string" && run.checkpoint) about.push(`checkpoint ${run.checkpoint}`);
    $("run-folder").textContent = about.join(" · ");

    const curves = safePath(run.curves);
    if (curves) {
      $("run-curves-image").setAttribute("src", curves);
      $("run-curves").hidden = false;
    }
    const metrics = run.metrics && typeof run.metrics === "object" ? Object.entries(run.metrics) : [];
    const body = $("run-metrics").querySelector("tbody");
    for (const [name, value] of metrics) {
      body.append(el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, formatMetric(value))));
    }
    $("run-metrics").hidden = metrics.length === 0;

    const validation = Array.isArray(run.validation) ? run.validation : [];
    const grid = $("run-validation");
    for (const item of validation) {
      if (!item || typeof item !== "object") continue;
      const path = safePath(item.overlay);
      const name = String(item.name ?? "");
      const numbers = [];
      if (isNumber(item.dice)) numbers.push(`Dice ${formatFraction(item.dice)}`);
      if (isNumber(item.f1)) numbers.push(`F1 ${formatFraction(item.f1)}`);
      const box = el("div", { class: "thumb-box" });
      if (path) {
        const overlay = el("img", { src: path, alt: "", loading: "lazy" });
        box.append(el("a", { href: path, target: "_blank", rel: "noopener" }, overlay));
      }
      else box.append(el("span", { class: "thumb-missing" }, "no overlay"));
      grid.append(
        el(
          "article",
          { class: "card" },
          box,
          el(
            "div",
            { class: "card-body" },
            el("div", { class: "card-name", title: name }, name),
            el("div", { class: "card-numbers" }, numbers.join(" · ")),
          ),
        ),
      );
    }
    $("run-validation-title").hidden = grid.childElementCount === 0;
  }

  // ---------------------------------------------------------------------------------------------- start

  renderHeader();
  renderFlagControls();
  buildOverview();
  bindOverview();
  bindDetail();
  renderRun();
  renderDecisionSummary();
  setView(state.view);
  setSort("id", 1);
  applyFilters();
  routeFromHash();
})();
