// Sign-In with Ethereum (EIP-4361) through an EIP-1193 wallet (window.ethereum).
// The server issues a single-use nonce, the wallet signs the message, the server verifies.
(function () {
  function csrf() {
    const m = document.cookie.match(/(?:^|; )mf_csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: body ? JSON.stringify(body) : "{}",
    });
    const data = await r.json().catch(() => ({ error: "Unexpected answer from the server." }));
    if (!r.ok) throw new Error(data.error || "Request refused.");
    return data;
  }
  function buildMessage(p) {
    const issued = new Date().toISOString();
    return `${p.domain} wants you to sign in with your Ethereum account:\n${p.address}\n\n${p.statement}\n\n` +
      `URI: ${p.uri}\nVersion: 1\nChain ID: ${p.chainId}\nNonce: ${p.nonce}\nIssued At: ${issued}\n` +
      `Expiration Time: ${p.expires_at}`;
  }
  async function run(button) {
    const status = button.parentElement.querySelector(".siwe-status");
    const say = (t) => { if (status) status.textContent = t; };
    if (!window.ethereum) { say("No Ethereum wallet found in this browser. Install one (e.g. a browser extension) and retry."); return; }
    try {
      const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
      const chainHex = await window.ethereum.request({ method: "eth_chainId" });
      // The server hands back the EIP-55 checksummed address the message must carry.
      const params = await post(button.dataset.nonceUrl, { address: account });
      const message = buildMessage({ ...params, chainId: parseInt(chainHex, 16) });
      const signature = await window.ethereum.request({ method: "personal_sign", params: [message, account] });
      const result = await post(button.dataset.siwe, { message, signature });
      say("Signed in.");
      window.location.href = result.redirect || window.location.href;
    } catch (err) {
      say(err.message || String(err));
    }
  }
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-siwe]");
    if (b) { e.preventDefault(); run(b); }
  });
})();
