"""Rewards paid on chain (issue 16), on the dev chain (in-process eth-tester): the contracts compile from
source in the run, an epoch with three contributors is closed, funded and published through the anchoring
flow, each contributor claims exactly their amount with the API's proof (through the server, from the page,
and from their own wallet with the API's calldata), and the contract refuses a second claim, another
account's proof, an altered amount and an unpublished epoch, with the page and the API saying why."""

from __future__ import annotations

import pytest

from attribution import anchoring, distribution, rewards
from attribution.distribution import chain
from attribution.engine import distributor
from attribution.engine.chain import ChainError, ChainUnavailable
from attribution.models import Anchor, AnswerAttribution, AnswerInfluence, RewardEntry
from datanets.demo_data import demo_records
from datanets.models import Contribution, Membership, Role
from serving.models import Conversation, Message
from tests.attribution.test_anchoring import closed_port

pytestmark = pytest.mark.django_db
POOL = 1_000_000


@pytest.fixture(autouse=True)
def anchored_here(monkeypatch):
    """Epochs are published by this test process only: a Celery worker of the session (its own in-process
    chain) must not take the anchoring task that closing an epoch queues."""
    monkeypatch.setattr(anchoring, "schedule", lambda anchor_id, countdown=0: None)


@pytest.fixture
def three(make_datanet, accepted, make_user, user):
    """carol, dave and erin, each with a linked wallet (an account of the dev chain) and influence 3:2:1."""
    from accounts.models import Wallet

    people = [make_user(name) for name in ("carol", "dave", "erin")]
    datanet = make_datanet(slug="paid")
    accounts = chain().w3.eth.accounts[1:4]
    conversation = Conversation.objects.create(user=user, model_id="mf-1")
    for n, (who, account) in enumerate(zip(people, accounts, strict=True)):
        Membership.objects.create(datanet=datanet, user=who, role=Role.CONTRIBUTOR)
        Wallet.objects.create(user=who, address=account, chain_id=chain().chain_id)  # 47 bits: a 64-bit column
        accepted(datanet, demo_records()[n : n + 1], contributor=who)
        message = Message.objects.create(conversation=conversation, role="assistant", content="An answer.")
        answer = AnswerAttribution.objects.create(chat_message=message, status="succeeded")
        AnswerInfluence.objects.create(answer=answer, contribution=Contribution.objects.get(contributor=who), score=1)
        for _ in range(2 - n):  # carol 3 answers, dave 2, erin 1
            extra = AnswerAttribution.objects.create(
                chat_message=Message.objects.create(conversation=conversation, role="assistant", content="More."),
                status="succeeded",
            )
            AnswerInfluence.objects.create(
                answer=extra, contribution=Contribution.objects.get(contributor=who), score=1
            )
    return people


def influence(person, text: str) -> None:
    """One more answer influenced by `person`'s record."""
    conversation = Conversation.objects.create(user=person, model_id="mf-1")
    message = Message.objects.create(conversation=conversation, role="assistant", content=text)
    answer = AnswerAttribution.objects.create(chat_message=message, status="succeeded")
    AnswerInfluence.objects.create(answer=answer, contribution=Contribution.objects.get(contributor=person), score=1)


def published(pool: int = POOL):
    epoch = rewards.close_epoch(pool=pool)
    distribution.addresses()  # deployed before, as `make run` does
    first = chain().w3.eth.block_number + 1
    anchor = anchoring.attempt(Anchor.objects.get(epoch=epoch).pk)
    assert anchor.status == "anchored", anchor.last_error
    return epoch, anchor, gas_since(first)


def gas_since(block: int) -> int:
    """Gas of every transaction mined from `block` on (the dev chain mines one per block)."""
    w3 = chain().w3
    blocks = (w3.eth.get_block(n, full_transactions=True) for n in range(block, w3.eth.block_number + 1))
    return sum(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"] for b in blocks for tx in b["transactions"])


def balance(account: str) -> int:
    return distributor.balance_of(chain().w3, distribution.addresses(), account)


def test_an_epoch_is_funded_published_and_each_contributor_claims_exactly_their_amount(three, client, other_user):
    carol, dave, erin = three
    epoch, anchor, gas = published()
    assert epoch.funded == POOL and epoch.leaf_scheme == "keccak"
    publish_gas = chain().w3.eth.get_transaction_receipt(anchor.tx_hash)["gasUsed"]
    print(f"\ngas: epoch publication {gas} (mint + approve + publish; publish alone {publish_gas})")
    check = anchoring.verify(anchor)
    assert check["ok"] and check["chain_root"] == epoch.root == check["recomputed_root"]
    amounts = {e.contributor: e.amount for e in RewardEntry.objects.filter(epoch=epoch)}
    assert amounts == {carol: 500_000, dave: 333_333, erin: 166_667}

    client.force_login(carol)  # through the API: the server relays the claim and pays the gas
    row = client.get("/api/v1/rewards/mine/").json()[0]
    assert row["claim_state"] == "unclaimed" and row["claim"]["fields"]["amount"] == 500_000
    assert row["claim"]["distributor"] == distribution.addresses().distributor and row["claim"]["abi"]
    answer = client.post(f"/api/v1/rewards/{epoch.number}/claim/")
    assert answer.status_code == 200, answer.content
    gas = chain().w3.eth.get_transaction_receipt(answer.json()["tx_hash"])["gasUsed"]
    print(f"gas: first claim of the epoch {gas}")
    again = client.post(f"/api/v1/rewards/{epoch.number}/claim/")
    assert again.status_code == 409 and "already claimed" in again.json()["detail"]
    assert client.get("/api/v1/rewards/mine/").json()[0]["claim_state"] == "claimed"

    client.force_login(dave)  # from the page
    page = client.get("/attribution/me/").content.decode()
    assert "Ready to claim" in page and "Claim 333,333 units" in page and "Claim from my wallet" in page
    page = client.post(f"/attribution/rewards/{epoch.number}/claim/", follow=True).content.decode()
    assert "Claimed: 333,333 units" in page
    page = client.post(f"/attribution/rewards/{epoch.number}/claim/", follow=True).content.decode()
    assert "was not claimed" in page and "already claimed" in page

    client.force_login(erin)  # from erin's own wallet, with the API's calldata (as a browser wallet sends it)
    claim = client.get("/api/v1/rewards/mine/").json()[0]["claim"]
    w3 = chain().w3
    tx = w3.eth.send_transaction({"from": erin.wallets.get().address, "to": claim["distributor"],
                                  "data": claim["calldata"]})  # fmt: skip
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert client.get("/api/v1/rewards/mine/").json()[0]["claim_state"] == "claimed"

    client.force_login(other_user)  # nobody claims, or sees, a row that is not theirs
    assert client.post(f"/api/v1/rewards/{epoch.number}/claim/").status_code == 404
    assert client.post(f"/attribution/rewards/{epoch.number}/claim/").status_code == 404
    assert client.get("/api/v1/rewards/mine/").json() == []
    client.logout()
    assert client.post(f"/api/v1/rewards/{epoch.number}/claim/").status_code in (401, 403)
    for person, amount in amounts.items():
        assert balance(person.wallets.get().address) == amount
    assert sum(balance(p.wallets.get().address) for p in three) == POOL
    assert balance(distribution.addresses().distributor) == 0


def test_the_contract_refuses_what_the_ledger_does_not_hold(three, client):
    epoch, _, _ = published()
    entries = {e.contributor: e for e in RewardEntry.objects.filter(epoch=epoch)}
    carol, dave = entries[three[0]], entries[three[1]]
    client.force_login(three[1])
    dave_claim = client.get("/api/v1/rewards/mine/").json()[0]["claim"]
    w3, found, relayer = chain().w3, distribution.addresses(), chain().account
    fields = dict(dave_claim["fields"])
    proof = [bytes.fromhex(p[2:]) for p in fields.pop("proof")]

    def refused(**changes) -> str:
        call = {**fields, **changes, "proof": changes.get("proof", proof)}
        with pytest.raises(distributor.ContractReverted) as caught:
            distributor.claim(w3, found, relayer, **call)
        return caught.value.reason

    assert refused(account=carol.wallet, index=carol.index) == "invalid proof"  # carol with dave's proof
    assert refused(amount=fields["amount"] + 1) == "invalid proof"  # an altered amount
    assert refused(epoch=epoch.number + 1) == "epoch not published"
    assert distribution.REFUSALS["invalid proof"].startswith("The chain refused the claim")
    # the next epoch is closed but not yet on chain: the page and API say so, and send nothing
    influence(three[1], "Another answer, in the next epoch.")
    later = rewards.close_epoch(pool=600)
    assert RewardEntry.objects.filter(epoch=later, contributor=three[1]).exists()
    answer = client.post(f"/api/v1/rewards/{later.number}/claim/")
    assert answer.status_code == 409 and "not on chain yet" in answer.json()["detail"]
    page = client.get("/attribution/me/").content.decode()
    assert "Not anchored" in page and "not on chain yet" in page
    assert not distributor.claimed(w3, found, epoch.number, dave.index)


def test_a_row_without_a_wallet_is_carried_into_the_next_epoch(three, client):
    three[2].wallets.all().delete()  # erin has no wallet when the epoch closes
    epoch, _, _ = published()
    erin = RewardEntry.objects.get(epoch=epoch, contributor=three[2])
    assert erin.wallet == "" and epoch.funded == POOL - erin.amount
    client.force_login(three[2])
    row = client.get("/api/v1/rewards/mine/").json()[0]
    assert row["claim_state"] == "no wallet" and row["claim"] is None
    assert "carried into your next epoch" in client.get("/attribution/me/").content.decode()
    w3, found = chain().w3, distribution.addresses()
    with pytest.raises(distributor.ContractReverted) as caught:  # a zero-address row is never paid (nor burned)
        distributor.claim(w3, found, chain().account, **distribution.claim_fields(epoch.number, erin),
                          proof=[bytes.fromhex(p[2:]) for p in distribution.proof(epoch, erin)])  # fmt: skip
    assert caught.value.reason == "no account"
    nxt = rewards.close_epoch(pool=0)
    carried = RewardEntry.objects.get(epoch=nxt, contributor=three[2])
    assert carried.carried_in == erin.amount == carried.amount


def test_a_chain_that_is_down_keeps_the_epoch_pending_and_the_retry_publishes_once(three, settings):
    epoch = rewards.close_epoch(pool=POOL)
    anchor = Anchor.objects.get(epoch=epoch)
    settings.CHAIN_RPC_URL, settings.CHAIN_TIMEOUT = f"http://127.0.0.1:{closed_port()}", 1
    with pytest.raises(ChainUnavailable):
        anchoring.attempt(anchor.pk)
    anchor.refresh_from_db()
    assert anchor.status == "pending" and "not reachable" in anchor.last_error
    settings.CHAIN_RPC_URL = None  # back
    assert anchoring.attempt(anchor.pk).status == "anchored"
    Anchor.objects.filter(pk=anchor.pk).update(status="pending")  # as if the worker died before saving
    again = anchoring.attempt(anchor.pk)
    assert again.status == "anchored" and again.tx_hash == anchor.__class__.objects.get(pk=anchor.pk).tx_hash
    w3, found = chain().w3, distribution.addresses()
    assert distributor.epoch_root(w3, found, epoch.number).hex() == epoch.root
    assert balance(found.distributor) == POOL  # funded once


def test_a_real_chain_without_deployed_contracts_says_what_to_run(three, settings, tmp_path):
    settings.CHAIN_DEV_KEY_OK = False
    settings.CHAIN_PRIVATE_KEY = "0x" + "11" * 32
    settings.VAR_DIR = tmp_path  # nothing deployed and kept here
    with pytest.raises(ChainError, match="deploy_rewards"):
        distribution.addresses()


def test_over_the_devchain_the_contracts_survive_a_restart_and_refusals_keep_their_reason(tmp_path):
    """`make run`'s chain: the contracts deployed once are still there after a restart (the journal replays
    the deployment at the same addresses), and a refused claim arrives over JSON-RPC with its reason."""
    from eth_account import Account

    from attribution.engine.chain import DEV_PRIVATE_KEY, Chain
    from tests.attribution.test_chain_engine import start_devchain, stop_devchain

    journal, log, dev = (
        tmp_path / "chain" / "journal.jsonl",
        tmp_path / "devchain.log",
        Account.from_key(DEV_PRIVATE_KEY),
    )
    proc, url = start_devchain(journal, log)
    try:
        found = distributor.deploy(Chain(url, timeout=5).w3, dev)
    finally:
        assert stop_devchain(proc) == 0
    proc, url = start_devchain(journal, log)
    try:
        w3 = Chain(url, timeout=5).w3
        assert len(w3.eth.get_code(found.distributor)) > 0 and len(w3.eth.get_code(found.token)) > 0
        with pytest.raises(distributor.ContractReverted) as caught:
            distributor.claim(w3, found, dev, 1, 0, dev.address, 5, bytes(32), [])
        assert caught.value.reason == "epoch not published"
    finally:
        assert stop_devchain(proc) == 0


@pytest.fixture(scope="module")
def devchain_url(tmp_path_factory):
    from tests.attribution.test_chain_engine import start_devchain, stop_devchain

    folder = tmp_path_factory.mktemp("devchain")
    proc, url = start_devchain(folder / "journal.jsonl", folder / "devchain.log")
    yield url
    stop_devchain(proc)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "viewport, suffix", [({"width": 1280, "height": 900}, ""), ({"width": 390, "height": 844}, "-phone")]
)
def test_a_contributor_claims_from_the_rewards_page(devchain_url, server_pool, settings, three, page, viewport, suffix):
    """On `make run`'s kind of chain (the devchain, shared by the site and this test)."""
    from tests.helpers import ARTIFACTS, sign_in

    settings.CHAIN_RPC_URL = devchain_url
    live_url = server_pool.get(CHAIN_RPC_URL=devchain_url, CHAIN_DEV_KEY_OK="true")
    epoch, _, _ = published()
    influence(three[1], "Another answer, in the next epoch.")
    rewards.close_epoch(pool=600)  # closed, not yet on chain
    page.set_viewport_size(viewport)
    sign_in(page, live_url, "dave")
    page.goto(f"{live_url}/attribution/me/")
    row = page.locator(f"[data-testid=reward-row][data-epoch='{epoch.number}']")
    assert "Ready to claim" in row.inner_text()
    assert "not on chain yet" in page.locator(f"[data-testid=reward-row][data-epoch='{epoch.number + 1}']").inner_text()
    row.get_by_role("button", name="Claim from my wallet").click()  # no wallet in this browser: it says so
    assert "No Ethereum wallet found" in row.inner_text()
    # A browser wallet (EIP-1193) is handed the distributor and the claim's calldata to sign and send.
    page.evaluate(WALLET.replace("CHAIN", hex(chain().chain_id)).replace("ACCOUNT", three[1].wallets.get().address))
    row.get_by_role("button", name="Claim from my wallet").click()
    page.wait_for_selector("text=Sent: transaction 0xfeed")
    sent = page.evaluate("window.sentByWallet")
    expected = distribution.claim_payload(RewardEntry.objects.get(epoch=epoch, contributor=three[1]))
    assert sent == {"from": three[1].wallets.get().address, "to": expected["distributor"], "data": expected["calldata"]}
    row.get_by_role("button", name="Claim 333,333 units").click()
    page.wait_for_selector("text=Claimed: 333,333 units")
    state = page.locator(f"[data-testid=reward-row][data-epoch='{epoch.number}']").get_attribute("data-state")
    assert state == "claimed"
    page.screenshot(path=str(ARTIFACTS / f"rewards-claim{suffix}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


# A stand-in for a browser wallet extension: it answers the page's EIP-1193 requests and keeps what it was
# asked to send (the test then checks it is the API's claim).
WALLET = """window.ethereum = { request: async ({ method, params }) => {
  if (method === "eth_chainId") return "CHAIN";
  if (method === "eth_requestAccounts") return ["ACCOUNT"];
  if (method === "eth_sendTransaction") { window.sentByWallet = params[0]; return "0xfeed"; }
  throw new Error("unexpected " + method);
} };"""
