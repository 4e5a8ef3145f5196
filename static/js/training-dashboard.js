// Live training dashboard: loss and learning-rate charts, progress in words, throughput, log.
// On every (re)connect the server first sends all stored points ("history"), then live
// ones; points merge by step, so a reload or a dropped socket never leaves a gap.
// When the job ends while the page is open, the header and summary are fetched again from
// the server, so a finished job shows the same words and next steps as after a reload.
(function () {
  const root = document.getElementById("training-dashboard");
  if (!root) return;
  const FINAL = ["succeeded", "failed", "cancelled"];
  const WORDS = JSON.parse(document.getElementById("status-words").textContent);
  const byStep = new Map();
  const el = (id) => document.getElementById(id);
  const common = { parsing: false, animation: false, responsive: true,
    scales: { x: { type: "linear", title: { display: true, text: "Step" }, ticks: { precision: 0 } } } };
  const loss = new Chart(el("loss-chart"), { type: "line", options: common, data: { datasets: [
    { label: "Training loss", data: [], borderColor: "#3b5bdb", pointRadius: 0, borderWidth: 2 },
    { label: "Evaluation loss", data: [], borderColor: "#e8590c", pointRadius: 3, showLine: true },
  ] } });
  const lr = new Chart(el("lr-chart"), { type: "line", options: common, data: { datasets: [
    { label: "Learning rate", data: [], borderColor: "#2b8a3e", pointRadius: 0 },
  ] } });

  const isFinal = () => FINAL.includes(el("job-status").dataset.status);
  function duration(seconds) {  // the same words as training/words.py duration()
    if (seconds == null || !isFinite(seconds) || seconds < 0) return "";
    if (seconds < 60) return "about " + Math.max(Math.round(seconds / 5) * 5, 5) + " seconds";
    const minutes = Math.round(seconds / 60);
    if (seconds / 60 < 90) return "about " + minutes + " minute" + (minutes === 1 ? "" : "s");
    return "about " + (seconds / 3600).toFixed(1) + " hours";
  }
  function merge(point) {
    const old = byStep.get(point.step) || {};
    const merged = { ...old };
    for (const [k, v] of Object.entries(point)) if (v !== null && v !== undefined) merged[k] = v;
    byStep.set(point.step, merged);
  }
  function series(key) {
    return [...byStep.values()].filter((p) => p[key] != null).sort((a, b) => a.step - b.step)
      .map((p) => ({ x: p.step, y: p[key] }));
  }
  function redraw() {
    loss.data.datasets[0].data = series("train_loss");
    loss.data.datasets[1].data = series("eval_loss");
    lr.data.datasets[0].data = series("learning_rate");
    loss.update("none"); lr.update("none");
    const last = [...byStep.values()].sort((a, b) => a.step - b.step).pop();
    if (!last || isFinal()) return;  // a job that is over shows the server's words, no ETA
    if (last.progress != null) el("job-progress").value = last.progress;
    const left = duration(last.eta_seconds);
    el("job-state").textContent = "Step " + last.step.toLocaleString("en-US") +
      (last.progress != null ? " · " + Math.round(last.progress * 100) + "% done" : "") + (left ? " · " + left + " left" : "");
    if (last.tokens_per_second != null)
      el("job-throughput").textContent = "Tokens per second " + Math.round(last.tokens_per_second).toLocaleString("en-US");
  }
  function refreshSummary() {
    // The page as the server now renders it: final words, metrics and the Chat / Export / Compare links.
    fetch(location.href, { headers: { "X-Requested-With": "fetch" } }).then((r) => r.text()).then((html) => {
      const doc = new DOMParser().parseFromString(html, "text/html");
      for (const id of ["job-head", "job-summary"]) {
        const fresh = doc.getElementById(id);
        if (fresh && el(id)) el(id).replaceWith(fresh);
      }
      root.dataset.final = "yes";
    });
  }
  function status(s) {
    const badge = el("job-status");
    badge.textContent = WORDS[s] || s; badge.dataset.status = s; badge.className = "status status-" + s;
    if (FINAL.includes(s)) {
      el("job-throughput").textContent = "";
      document.querySelectorAll("form[action$='/cancel/']").forEach((f) => f.remove());
      if (root.dataset.final !== "yes") refreshSummary();
    }
  }
  function log(line) {
    const pre = el("job-log");
    const lines = (pre.textContent ? pre.textContent.split("\n") : []).concat([line]).slice(-60);
    pre.textContent = lines.join("\n");
    pre.scrollTop = pre.scrollHeight;
  }
  // For tests and curious users: the points the chart holds right now.
  window.MFTraining = { points: () => [...byStep.values()].sort((a, b) => a.step - b.step) };

  function connect(delay) {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsUrl);
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "history") {
        msg.points.forEach(merge);
        el("job-log").textContent = msg.log.join("\n");
        status(msg.status);
        root.dataset.synced = "yes";
      } else if (msg.type === "point") merge(msg.point);
      else if (msg.type === "log") log(msg.line);
      else if (msg.type === "status") status(msg.status);
      redraw();
    };
    ws.onopen = () => { delay = 1000; };
    ws.onclose = () => {
      root.dataset.synced = "no";
      if (!isFinal()) setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
    };
  }
  connect(1000);
})();
