"""Reward epochs: the pool split by positive influence, reputation penalties, a ledger row
per contributor, the epoch's Merkle root (anchored and verifiable), and who sees what."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution import anchoring, rewards
from attribution.engine import distributor
from attribution.models import Anchor, AnswerAttribution, AnswerInfluence, RewardEntry
from datanets import merkle
from datanets.demo_data import demo_records
from datanets.models import Contribution, ContributorStanding, Membership, Role
from serving.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def influenced(make_datanet, accepted, make_user, user):
    """Two answers: one influenced by carol (0.6) and dave (0.2), one by carol alone."""
    carol, dave = make_user("carol"), make_user("dave")
    datanet = make_datanet(slug="pool")
    for who in (carol, dave):
        Membership.objects.create(datanet=datanet, user=who, role=Role.CONTRIBUTOR)
    accepted(datanet, demo_records()[:2], contributor=carol)
    accepted(datanet, demo_records()[2:4], contributor=dave)
    c1 = Contribution.objects.filter(contributor=carol).first()
    d1 = Contribution.objects.filter(contributor=dave).first()
    conversation = Conversation.objects.create(user=user, model_id="mf-1")
    for parts in ([(c1, 0.6), (d1, 0.2)], [(c1, 0.5)]):
        message = Message.objects.create(conversation=conversation, role="assistant", content="An answer.")
        answer = AnswerAttribution.objects.create(chat_message=message, status="succeeded")
        for row, score in parts:
            AnswerInfluence.objects.create(answer=answer, contribution=row, score=score)
    return {"carol": carol, "dave": dave, "datanet": datanet}


def test_it_splits_the_pool_by_influence(influenced):
    epoch = rewards.close_epoch(pool=1_000_000)
    entries = {e.contributor: e for e in RewardEntry.objects.filter(epoch=epoch)}
    carol, dave = entries[influenced["carol"]], entries[influenced["dave"]]
    # carol: 0.75 of answer 1 + all of answer 2 = 1.75 credits; dave: 0.25 → 7/8 and 1/8 of the pool
    assert (carol.gross, dave.gross) == (875_000, 125_000)
    assert carol.penalty == dave.penalty == 0 and epoch.withheld == 0 and epoch.answers == 2
    assert epoch.distributed == carol.amount + dave.amount == 1_000_000
    assert epoch.root == rewards.ledger_root(epoch) and len(epoch.root) == 64
    assert Anchor.objects.get(epoch=epoch).status == "pending"
    assert rewards.open_epoch().number == epoch.number + 1


def test_low_reputation_costs_part_of_the_share(influenced):
    ContributorStanding.objects.filter(user=influenced["dave"]).update(accepted=0, rejected=6)  # reputation 0.125
    epoch = rewards.close_epoch(pool=1_000_000)
    dave = RewardEntry.objects.get(epoch=epoch, contributor=influenced["dave"])
    assert dave.reputation == pytest.approx(0.125) and dave.penalty == int(125_000 * 0.75)
    assert dave.amount == dave.gross - dave.penalty and epoch.withheld == dave.penalty
    assert epoch.distributed + epoch.withheld == epoch.pool
    assert rewards.close_epoch().pool >= epoch.withheld  # penalties roll into the next pool


def test_an_epoch_root_anchors_and_an_edited_ledger_row_fails_verification(influenced, client):
    epoch = rewards.close_epoch(pool=1000)
    anchor = anchoring.attempt(Anchor.objects.get(epoch=epoch).pk)
    assert anchor.status == "anchored" and anchoring.verify(anchor)["ok"]
    entry = RewardEntry.objects.filter(epoch=epoch).first()
    proof = rewards.entry_proof(epoch, entry)
    assert distributor.verify(bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(p[2:]) for p in proof["proof"]],
                              bytes.fromhex(epoch.root))  # fmt: skip
    RewardEntry.objects.filter(pk=entry.pk).update(amount=entry.amount + 1)
    result = anchoring.verify(anchor)
    assert not result["ok"] and result["chain_root"] == epoch.root != result["recomputed_root"]


def test_contributors_see_their_own_rewards_only(influenced, client, other_user):
    epoch = rewards.close_epoch(pool=1000)
    client.force_login(influenced["carol"])
    mine = client.get("/api/v1/rewards/mine/").json()
    assert [r["epoch"] for r in mine] == [epoch.number] and mine[0]["amount"] == 875
    page = client.get("/attribution/me/").content.decode()
    assert "875" in page and "Answers influenced" in page
    assert client.get("/api/v1/rewards/").json()[0]["root"] == epoch.root  # totals and roots are public
    client.force_login(other_user)
    assert client.get("/api/v1/rewards/mine/").json() == []
    assert "875" not in client.get("/attribution/me/").content.decode()
    client.logout()
    assert client.get("/api/v1/rewards/mine/").status_code in (401, 403)
    assert client.get("/attribution/me/").status_code == 302


def test_only_staff_close_an_epoch(influenced, client, make_user):
    client.force_login(influenced["carol"])
    assert client.post("/attribution/rewards/close/", {"pool": "10"}).status_code == 302
    assert not RewardEntry.objects.exists()
    staff = make_user("root", is_staff=True)
    client.force_login(staff)
    client.post("/attribution/rewards/close/", {"pool": "-5"})
    assert not RewardEntry.objects.exists()
    client.post("/attribution/rewards/close/", {"pool": "100"})
    assert RewardEntry.objects.count() == 2


def test_an_epoch_without_answers_keeps_its_pool():
    epoch = rewards.close_epoch(pool=500)
    assert epoch.distributed == 0 and epoch.withheld == 500 and not epoch.entries.exists()
    assert epoch.root == merkle.EMPTY_ROOT.hex()


@given(st.integers(0, 10**12), st.dictionaries(st.integers(1, 50), st.integers(1, 10**6), min_size=1, max_size=20))
def test_the_split_always_sums_to_the_pool(pool, weights):
    shares = rewards.split(pool, {k: Decimal(v) for k, v in weights.items()})
    assert sum(shares.values()) == pool and all(s >= 0 for s in shares.values())


def test_ledger_leaves_are_salted_so_sibling_hashes_do_not_reveal_amounts(influenced):
    """A proof hands its holder the sibling hashes; with a 256-bit salt in every leaf, guessing another
    row's (account, amount) and hashing it no longer finds that sibling. Epochs closed before on-chain
    payment keep their JSON leaves and roots, so old anchors still verify."""
    from attribution.ledger import leaf, ledger_root

    epoch = rewards.close_epoch(pool=1000)
    first, second = RewardEntry.objects.filter(epoch=epoch).order_by("index")[:2]
    assert len(first.salt) == 64 and first.salt != second.salt
    proof = rewards.entry_proof(epoch, first)
    assert proof["leaf"]["salt"] == "0x" + first.salt and proof["scheme"] == "keccak"  # its contributor sees it
    sibling = bytes.fromhex(proof["proof"][0][2:])
    unsalted = distributor.leaf_hash(epoch.number, second.index, ZERO, second.amount, bytes(32))
    assert unsalted != sibling  # the right guess, without the salt
    assert distributor.leaf_hash(epoch.number, second.index, ZERO, second.amount, second.salt) == sibling
    assert distributor.verify(bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(p[2:]) for p in proof["proof"]],
                              bytes.fromhex(epoch.root))  # fmt: skip
    # An epoch closed before on-chain payment (JSON leaves, RFC 9162 tree) verifies as it did.
    epoch.leaf_scheme = "json"
    RewardEntry.objects.filter(epoch=epoch).update(salt="")
    first.refresh_from_db()
    old_root = ledger_root(epoch)
    proof = rewards.entry_proof(epoch, first)
    assert "salt" not in json.loads(proof["leaf"]) and merkle.leaf_hash(leaf(epoch.number, first)).hex() == proof[
        "leaf_hash"]  # fmt: skip
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), first.index, proof["tree_size"],
                                   [bytes.fromhex(p) for p in proof["proof"]], bytes.fromhex(old_root))  # fmt: skip


ZERO = "0x" + "00" * 20
