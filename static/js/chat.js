// Chat page: streams tokens over /ws/chat/<model id>/, Stop cancels, compare shows the base beside.
(function () {
  const app = document.getElementById("chat-app");
  if (!app) return;
  const $ = (id) => document.getElementById(id);
  let conversation = app.dataset.conversation ? Number(app.dataset.conversation) : null;
  let bubbles = {};
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
  function busy(on) { $("send").disabled = on; $("stop").disabled = !on; }
  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + app.dataset.wsUrl);
    ws.onopen = () => say("");
    ws.onclose = () => { say("Disconnected; reconnecting…"); busy(false); setTimeout(connect, 2000); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "started") {
        conversation = msg.conversation;
        bubbles = {};
        msg.sides.forEach((s) => { bubbles[s] = bubble("assistant side-" + s, s === "base" ? "Base model" : app.dataset.modelName, ""); });
        if (!location.search.includes("c=")) history.replaceState(null, "", "?c=" + conversation);
      } else if (msg.type === "token") {
        bubbles[msg.side].appendChild(document.createTextNode(msg.text));
      } else if (msg.type === "done") {
        delete bubbles[msg.side];
        if (!Object.keys(bubbles).length) { busy(false); say(msg.finish_reason === "cancelled" ? "Stopped." : ""); }
      } else if (msg.type === "error") {
        say(msg.error); if (!Object.keys(bubbles).length) busy(false);
      }
    };
  }
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
      compare: $("compare") ? $("compare").checked : false }));
    busy(true);
  });
  $("stop").addEventListener("click", () => ws && ws.send(JSON.stringify({ type: "stop" })));
  connect();
})();
