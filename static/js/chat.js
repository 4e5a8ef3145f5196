// Chat page: streams tokens over /ws/chat/<model id>/, Stop cancels, compare shows the base beside;
// the sources panel lists the records retrieved for the question and, once scored, the
// contributions that influenced the answer (the server sends only records this user may read).
(function () {
  const app = document.getElementById("chat-app");
  if (!app) return;
  const $ = (id) => document.getElementById(id);
  let conversation = app.dataset.conversation ? Number(app.dataset.conversation) : null;
  let bubbles = {};
  let lastAnswer = null;
  let ws;
  const say = (t) => { $("chat-status").textContent = t; };
  function bubble(cls, who, text) {
    const div = document.createElement("div");
    div.className = "bubble " + cls;
    const label = document.createElement("span");
    label.className = "who"; label.textContent = who;
    div.appendChild(label);
    div.appendChild(document.createTextNode(text || ""));
    $("transcript").appendChild(div);
    $("transcript").scrollTop = $("transcript").scrollHeight;
    return div;
  }
  // Text with [start, end) spans wrapped in <mark>, built from text nodes (never innerHTML).
  function marked(text, spans) {
    const frag = document.createDocumentFragment();
    let at = 0;
    (spans || []).slice().sort((a, b) => a[0] - b[0]).forEach(([s, e]) => {
      if (s < at) return;
      frag.appendChild(document.createTextNode(text.slice(at, s)));
      const m = document.createElement("mark"); m.textContent = text.slice(s, e); frag.appendChild(m);
      at = e;
    });
    frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }
  function entry(item, scoreLabel) {
    const li = document.createElement("li");
    li.className = "cite";
    li.dataset.contribution = item.contribution;
    const head = document.createElement("div");
    head.className = "small";
    const a = document.createElement("a"); a.href = item.url; a.textContent = "#" + item.contribution;
    head.appendChild(a);
    head.appendChild(document.createTextNode(` · ${item.datanet.name} · by ${item.contributor} · ${scoreLabel} ${item.score.toFixed(3)}`
      + (item.used_in_prompt ? " · used in the prompt" : "")));
    const quote = document.createElement("blockquote");
    quote.appendChild(marked(item.excerpt, item.spans));
    li.appendChild(head); li.appendChild(quote);
    return li;
  }
  function showCitations(items, note) {
    const list = $("cite-list"); list.replaceChildren();
    (items || []).forEach((i) => list.appendChild(entry(i, "score")));
    $("cite-status").textContent = note || (items && items.length ? "" : "No matching records you may read.");
  }
  function showInfluence(data) {
    const list = $("influence-list"); list.replaceChildren();
    (data.items || []).forEach((i) => list.appendChild(entry(i, "influence")));
    const words = { queued: "Scoring…", running: "Scoring…", failed: data.note, none: "" };
    $("influence-status").textContent = data.items && data.items.length ? "" : (words[data.status] ?? "No contribution you may read influenced this answer.");
  }
  function busy(on) { $("send").disabled = on; $("stop").disabled = !on; }
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + app.dataset.wsUrl);
    ws.onopen = () => { say(""); busy(false); };  // Send stays disabled until the socket is open
    ws.onclose = () => { say("Disconnected; reconnecting…"); busy(false); $("send").disabled = true; setTimeout(connect, 2000); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "started") {
        conversation = msg.conversation;
        bubbles = {};
        msg.sides.forEach((s) => { bubbles[s] = bubble("assistant side-" + s, s === "base" ? "Base model" : app.dataset.modelName, ""); });
        if (!location.search.includes("c=")) history.replaceState(null, "", "?c=" + conversation);
        $("cite-status").textContent = "Retrieving sources…";
        showInfluence({ status: "none", items: [] });
      } else if (msg.type === "citations") {
        showCitations(msg.items.map((i) => ({ ...i, used_in_prompt: msg.used })), msg.error);
      } else if (msg.type === "token") {
        bubbles[msg.side].appendChild(document.createTextNode(msg.text));
      } else if (msg.type === "done") {
        delete bubbles[msg.side];
        if (msg.side === "model" && msg.message) { lastAnswer = msg.message; $("influence-status").textContent = "Scoring…"; }
        if (!Object.keys(bubbles).length) { busy(false); say(msg.finish_reason === "cancelled" ? "Stopped." : ""); }
      } else if (msg.type === "influence") {
        if (msg.message === lastAnswer) showInfluence(msg);
      } else if (msg.type === "error") {
        say(msg.error); if (!Object.keys(bubbles).length) busy(false);
      }
    };
  }
  const initial = JSON.parse(($("initial-sources") || {}).textContent || "null");
  if (initial) { lastAnswer = initial.message; showCitations(initial.citations, initial.citations.length ? "" : " "); showInfluence(initial.influence); }
  $("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const content = $("question").value.trim();
    if (!content || !ws || ws.readyState !== 1) return;
    bubble("user", "You", content);
    $("question").value = "";
    const params = { max_tokens: Number($("max_tokens").value), temperature: Number($("temperature").value),
      top_p: Number($("top_p").value) };
    if ($("seed").value !== "") params.seed = Number($("seed").value);
    ws.send(JSON.stringify({ type: "ask", content, conversation, system: $("system").value, params,
      compare: $("compare") ? $("compare").checked : false, ground: $("ground") ? $("ground").checked : false }));
    busy(true);
  });
  $("stop").addEventListener("click", () => ws && ws.send(JSON.stringify({ type: "stop" })));
  connect();
})();
