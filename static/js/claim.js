// Claim a reward from the contributor's own wallet (EIP-1193, window.ethereum): the page gives the
// distributor's address and the claim's calldata; the wallet signs and sends it and pays the gas.
(function () {
  async function claim(button) {
    const status = button.parentElement.querySelector(".claim-status");
    const say = (t) => { if (status) status.textContent = t; };
    if (!window.ethereum) { say("No Ethereum wallet found in this browser. Use the Claim button, or a script with the API's proof."); return; }
    try {
      const chainHex = await window.ethereum.request({ method: "eth_chainId" });
      if (parseInt(chainHex, 16) !== Number(button.dataset.chainId)) {
        say(`Switch your wallet to chain ${button.dataset.chainId} first (it is on ${parseInt(chainHex, 16)}).`);
        return;
      }
      const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
      const hash = await window.ethereum.request({
        method: "eth_sendTransaction",
        params: [{ from: account, to: button.dataset.distributor, data: button.dataset.calldata }],
      });
      say(`Sent: transaction ${hash}. Reload this page in a moment to see it claimed.`);
    } catch (err) {
      say(err.message || String(err));
    }
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-wallet-claim]");
    if (button) { event.preventDefault(); claim(button); }
  });
})();
