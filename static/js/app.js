// Small progressive enhancements for every page: copy buttons, dismissible flashes,
// and live notifications over /ws/notifications/ (reconnects with backoff).
(function () {
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-copy]");
    if (!b) return;
    const el = document.querySelector(b.dataset.copy);
    if (el && navigator.clipboard) navigator.clipboard.writeText(el.textContent.trim()).then(() => (b.textContent = "Copied"));
  });
  document.addEventListener("click", (e) => {
    const close = e.target.closest("[data-dismiss]");
    if (close) close.closest(".flash").remove();
  });

  // Live notifications arrive while a person reads: they stack in a corner (bottom, where
  // no page header or status sits), can be dismissed, and go away by themselves.
  function toast(level, text) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const div = document.createElement("div");
    div.className = "flash flash-" + (level || "info");
    div.setAttribute("role", "status");
    const span = document.createElement("span");
    span.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "flash-close";
    close.dataset.dismiss = "";
    close.setAttribute("aria-label", "Dismiss this message");
    close.textContent = "×";
    div.append(span, close);
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
