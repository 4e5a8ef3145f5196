// Chat page: streams tokens over /ws/chat/<model id>/, Stop cancels, compare shows the base beside;
// the sources panel lists the records retrieved for the question and, once scored, the
// contributions that influenced the answer (the server sends only records this user may read).
// Everything the server says goes into the conversation itself: a waiting note until the first
// token, and any refusal or failure in plain words, in the answer's bubble or as a line of its own.
(function () {
  const app = document.getElementById("chat-app");
  if (!app) return;
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript");
  const STORE = "modelfactory.chat.settings";
  let conversation = app.dataset.conversation ? Number(app.dataset.conversation) : null;
  let bubbles = {};  // side -> bubble of the answer being written
  let lastAnswer = null;
  let ws;
  let waitingSince = 0;
  let ticker = null;
  const say = (t) => { $("chat-status").textContent = t; };

  // --- the transcript ---------------------------------------------------------------------
  // Follow new text only while the person is at (or near) the bottom: scrolling up to read stops it.
  const atBottom = () => transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 48;
  const toBottom = () => { transcript.scrollTop = transcript.scrollHeight; };
  function append(parent, node, force) {
    const follow = force || atBottom();
    parent.appendChild(node);
    if (follow) toBottom();
    return node;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }
  function bubble(cls, who, text, parent, force) {
    const div = el("div", "bubble " + cls);
    div.appendChild(el("span", "who", who));
    if (text) div.appendChild(document.createTextNode(text));
    return append(parent || transcript, div, force);
  }
  function errorLine(text) {
    const line = el("div", "chat-error", text);
    line.setAttribute("role", "alert");
    return append(transcript, line, true);
  }
  const sideName = (side) => (side === "base" ? "Base model, not fine-tuned" : app.dataset.modelName);

  // The "Finding sources… / Loading the model…" note inside a bubble until its first token.
  function pending(div, text) {
    let note = div.querySelector(".pending");
    if (!note) { note = el("span", "pending"); div.appendChild(note); }
    note.dataset.text = text;
    note.textContent = text;
  }
  function unpend(div) { const note = div.querySelector(".pending"); if (note) note.remove(); }
  function tick() {
    const seconds = Math.round((Date.now() - waitingSince) / 1000);
    transcript.querySelectorAll(".pending").forEach((n) => {
      n.textContent = seconds >= 3 ? `${n.dataset.text} ${seconds} s` : n.dataset.text;
    });
  }
  // Close a side's bubble: a failure is always shown; otherwise a note only where nothing was written.
  function finish(side, note, failed) {
    const div = bubbles[side];
    if (!div || div.classList.contains("failed")) return;
    unpend(div);
    if (failed) div.classList.add("failed");
    if (!failed && div.dataset.written) return;
    const line = append(div, el("span", failed ? "bubble-error" : "note", note));
    if (failed) line.setAttribute("role", "alert");
  }
  function closeAll(note) {
    Object.keys(bubbles).forEach((side) => finish(side, note, true));
    bubbles = {};
    clearInterval(ticker);
    busy(false);
  }

  // --- sources ----------------------------------------------------------------------------
  // Text with [start, end) spans wrapped in <mark>, built from text nodes (never innerHTML).
  function marked(text, spans) {
    const frag = document.createDocumentFragment();
    let at = 0;
    (spans || []).slice().sort((a, b) => a[0] - b[0]).forEach(([s, e]) => {
      if (s < at) return;
      frag.appendChild(document.createTextNode(text.slice(at, s)));
      frag.appendChild(el("mark", "", text.slice(s, e)));
      at = e;
    });
    frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }
  const recordUrl = (item) => item.url || `/datanets/${encodeURIComponent(item.datanet.slug)}/records/${item.contribution}/`;
  function entry(item, scoreLabel) {
    const li = el("li", "cite");
    li.dataset.contribution = item.contribution;
    const head = el("div", "small");
    const a = el("a", "", "Record #" + item.contribution); a.href = recordUrl(item);
    head.appendChild(a);
    head.appendChild(document.createTextNode(` · ${item.datanet.name} · by ${item.contributor} · ${scoreLabel} ${Number(item.score).toFixed(2)}`
      + (item.used_in_prompt ? " · used in the prompt" : "")));
    const quote = el("blockquote");
    quote.appendChild(marked(item.excerpt, item.spans));
    li.appendChild(head); li.appendChild(quote);
    return li;
  }
  function showCitations(items, note) {
    const list = $("cite-list"); list.replaceChildren();
    (items || []).forEach((i) => list.appendChild(entry(i, "score")));
    $("cite-status").textContent = note || (items && items.length ? "" : "No matching records you may read.");
  }
  // The strongest few first; the long tail of small scores folded away under one line.
  const INFLUENCE_SHOWN = 5;
  function showInfluence(data) {
    const list = $("influence-list"); list.replaceChildren();
    const items = data.items || [];
    items.slice(0, INFLUENCE_SHOWN).forEach((i) => list.appendChild(entry(i, "influence")));
    const old = $("influence-more"); if (old) old.remove();
    if (items.length > INFLUENCE_SHOWN) {
      const more = el("details", "more-influence"); more.id = "influence-more";
      more.appendChild(el("summary", "small", `${items.length - INFLUENCE_SHOWN} more with smaller influence`));
      const rest = el("ol", "cite-list"); rest.start = INFLUENCE_SHOWN + 1;
      items.slice(INFLUENCE_SHOWN).forEach((i) => rest.appendChild(entry(i, "influence")));
      more.appendChild(rest);
      list.after(more);
    }
    const words = { queued: "Scoring…", running: "Scoring…", failed: data.note, none: "" };
    $("influence-status").textContent = data.items && data.items.length ? "" : (words[data.status] ?? "No contribution you may read influenced this answer.");
  }

  // --- the conversation list --------------------------------------------------------------
  function listConversation(id, title) {
    const list = $("conv-list");
    if (list.querySelector(`a[href="?c=${id}"]`)) return;
    list.querySelectorAll("li.muted").forEach((li) => li.remove());
    list.querySelectorAll("a.active").forEach((a) => { a.classList.remove("active"); a.removeAttribute("aria-current"); });
    const li = el("li");
    const a = el("a", "active", title || "Conversation " + id);
    a.href = "?c=" + id; a.setAttribute("aria-current", "page");
    li.appendChild(a);
    list.prepend(li);
  }

  // --- settings remembered in this browser -------------------------------------------------
  const remembered = () => Array.from(document.querySelectorAll("[data-remember]"));
  function restore() {
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(STORE) || "{}") || {}; } catch (e) { saved = {}; }
    remembered().forEach((input) => {
      if (!(input.id in saved)) return;
      if (input.type === "checkbox") input.checked = Boolean(saved[input.id]);
      else input.value = String(saved[input.id]);
    });
  }
  function remember() {
    const saved = {};
    remembered().forEach((input) => { saved[input.id] = input.type === "checkbox" ? input.checked : input.value; });
    try { localStorage.setItem(STORE, JSON.stringify(saved)); } catch (e) { /* private mode: not remembered */ }
  }
  const number = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  // A value outside a field's range is pointed out on the field itself, before anything is sent.
  function invalidSetting() {
    return ["max_tokens", "temperature", "top_p", "seed"].map($).find((i) => i.validity.rangeOverflow
      || i.validity.rangeUnderflow || i.validity.badInput);
  }

  // --- the socket -------------------------------------------------------------------------
  function busy(on) { $("send").disabled = on; $("stop").disabled = !on; }
  const handlers = {
    started(msg) {
      conversation = msg.conversation;
      listConversation(msg.conversation, msg.title);
      if (!location.search.includes("c=")) history.replaceState(null, "", "?c=" + conversation);
      const row = append(transcript, el("div", "answers" + (msg.sides.length > 1 ? " pair" : "")), true);
      bubbles = {};
      msg.sides.forEach((s) => { bubbles[s] = bubble("assistant side-" + s, sideName(s), "", row, true); pending(bubbles[s], "Finding sources…"); });
      waitingSince = Date.now();
      clearInterval(ticker); ticker = setInterval(tick, 1000);
      $("cite-status").textContent = "Retrieving sources…";
      showInfluence({ status: "none", items: [] });
    },
    citations(msg) { showCitations(msg.items.map((i) => ({ ...i, used_in_prompt: msg.used })), msg.error); },
    status(msg) {
      const words = { loading: "Loading the model (the first answer takes longer)…", generating: "Writing…" };
      if (bubbles[msg.side]) pending(bubbles[msg.side], words[msg.status] || "Writing…");
    },
    token(msg) {
      const div = bubbles[msg.side];
      if (!div) return;
      unpend(div);
      div.dataset.written = "1";
      append(div, document.createTextNode(msg.text));
    },
    done(msg) {
      const div = bubbles[msg.side];
      if (msg.finish_reason === "cancelled" && div && div.dataset.written) append(div, el("span", "note", "Stopped."));
      finish(msg.side, msg.finish_reason === "cancelled" ? "Stopped before the model wrote anything."
        : "The model gave an empty answer.");
      delete bubbles[msg.side];
      if (msg.side === "model" && msg.message) { lastAnswer = msg.message; $("influence-status").textContent = "Scoring…"; }
      if (!Object.keys(bubbles).length) { clearInterval(ticker); busy(false); say(""); }
    },
    influence(msg) { if (msg.message === lastAnswer) showInfluence(msg); },
    error(msg) {
      const text = msg.error || "Something went wrong; please try again.";
      if (msg.side && bubbles[msg.side]) finish(msg.side, text, true);
      else errorLine(msg.side ? `${sideName(msg.side)}: ${text}` : text);
      if (!Object.keys(bubbles).length) busy(false);
    },
  };
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + app.dataset.wsUrl);
    ws.onopen = () => { say(""); busy(false); };  // Send stays disabled until the socket is open
    ws.onclose = () => {
      if (Object.keys(bubbles).length) closeAll("The connection to the server dropped, so this answer stopped here.");
      say("Disconnected; reconnecting…"); busy(false); $("send").disabled = true; setTimeout(connect, 2000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (handlers[msg.type]) handlers[msg.type](msg);
    };
  }

  restore();
  remembered().forEach((input) => input.addEventListener("change", remember));
  const initial = JSON.parse(($("initial-sources") || {}).textContent || "null");
  if (initial) { lastAnswer = initial.message; showCitations(initial.citations, initial.citations.length ? "" : " "); showInfluence(initial.influence); }
  toBottom();
  $("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const content = $("question").value.trim();
    if (!content || !ws || ws.readyState !== 1) return;
    const bad = invalidSetting();
    if (bad) { bad.closest("details").open = true; bad.reportValidity(); return; }
    bubble("user", "You", content, transcript, true);
    $("question").value = "";
    say("");
    const params = { max_tokens: number("max_tokens"), temperature: number("temperature"), top_p: number("top_p"),
      seed: number("seed") };
    ws.send(JSON.stringify({ type: "ask", content, conversation, system: $("system").value, params,
      compare: $("compare") ? $("compare").checked : false, ground: $("ground") ? $("ground").checked : false }));
    busy(true);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !$("send").disabled) { e.preventDefault(); $("ask").requestSubmit(); }
  });
  $("stop").addEventListener("click", () => ws && ws.send(JSON.stringify({ type: "stop" })));
  connect();
})();
