// Live training dashboard: loss and learning-rate charts, progress, ETA, throughput, log.
// On every (re)connect the server first sends all stored points ("history"), then live
// ones; points merge by step, so a reload or a dropped socket never leaves a gap.
(function () {
  const root = document.getElementById("training-dashboard");
  if (!root) return;
  const byStep = new Map();
  const el = (id) => document.getElementById(id);
  const common = { parsing: false, animation: false, responsive: true,
    scales: { x: { type: "linear", title: { display: true, text: "step" } } } };
  const loss = new Chart(el("loss-chart"), { type: "line", options: common, data: { datasets: [
    { label: "train loss", data: [], borderColor: "#3b5bdb", pointRadius: 0, borderWidth: 2 },
    { label: "eval loss", data: [], borderColor: "#e8590c", pointRadius: 3, showLine: true },
  ] } });
  const lr = new Chart(el("lr-chart"), { type: "line", options: common, data: { datasets: [
    { label: "learning rate", data: [], borderColor: "#2b8a3e", pointRadius: 0 },
  ] } });

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
    if (last) {
      if (last.progress != null) el("job-progress").value = last.progress;
      if (last.eta_seconds != null) el("job-eta").textContent = "ETA " + Math.round(last.eta_seconds) + " s";
      if (last.tokens_per_second != null) el("job-throughput").textContent = Math.round(last.tokens_per_second) + " tokens/s";
    }
  }
  function status(s, message) {
    const badge = el("job-status");
    badge.textContent = s; badge.className = "status status-" + s;
    if (message) el("job-message").textContent = message;
    if (["succeeded", "failed", "cancelled"].includes(s)) {
      el("job-progress").value = s === "succeeded" ? 1 : el("job-progress").value;
      document.querySelectorAll("form[action$='/cancel/']").forEach((f) => f.remove());
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
        status(msg.status, msg.message);
        root.dataset.synced = "yes";
      } else if (msg.type === "point") merge(msg.point);
      else if (msg.type === "log") log(msg.line);
      else if (msg.type === "status") status(msg.status, msg.message);
      redraw();
    };
    ws.onopen = () => { delay = 1000; };
    ws.onclose = () => {
      root.dataset.synced = "no";
      if (!["succeeded", "failed", "cancelled"].includes(el("job-status").textContent))
        setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
    };
  }
  connect(1000);
})();
