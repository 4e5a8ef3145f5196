// Small progressive enhancements for every page: copy buttons, flash fade-out,
// and live notifications over /ws/notifications/ (reconnects with backoff).
(function () {
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-copy]");
    if (!b) return;
    const el = document.querySelector(b.dataset.copy);
    if (el && navigator.clipboard) navigator.clipboard.writeText(el.textContent.trim()).then(() => (b.textContent = "Copied"));
  });

  function toast(level, text) {
    const box = document.getElementById("messages");
    if (!box) return;
    const div = document.createElement("div");
    div.className = "flash flash-" + (level || "info");
    div.setAttribute("role", "status");
    div.textContent = text;
    box.appendChild(div);
    setTimeout(() => div.remove(), 8000);
  }
  window.MFToast = toast;

  function connect(url, delay) {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + url);
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "notify") toast(msg.level, msg.text);
    };
    ws.onopen = () => { delay = 1000; document.body.dataset.live = "on"; };
    ws.onclose = () => { document.body.dataset.live = "off"; setTimeout(() => connect(url, Math.min(delay * 2, 30000)), delay); };
  }
  document.addEventListener("DOMContentLoaded", () => {
    const live = document.getElementById("live-notifications");
    if (live) connect(live.dataset.wsUrl, 1000);
  });
})();
