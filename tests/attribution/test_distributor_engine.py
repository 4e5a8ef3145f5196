"""The distributor engine: Vyper contracts compiled from source, epochs published and claimed on an
in-process eth-tester chain, Merkle proofs that Python and the contract agree on."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.providers.eth_tester import EthereumTesterProvider

from attribution.engine import distributor as d
from attribution.engine.chain import DEV_PRIVATE_KEY, keep_recursion_limit

MINTED = 10**24  # the owner's float, far more than any epoch here


class Row(NamedTuple):
    epoch: int
    index: int
    account: str
    amount: int
    salt: bytes


class Epoch(NamedTuple):
    rows: list[Row]
    root: bytes
    proofs: list[list[bytes]]
    total: int


def build_epoch(epoch: int, payees: list[tuple[str, int]]) -> Epoch:
    rows = [Row(epoch, i, account, amount, d.new_salt()) for i, (account, amount) in enumerate(payees)]
    leaves = [d.leaf_hash(*row) for row in rows]
    return Epoch(rows, d.merkle_root(leaves), d.merkle_proofs(leaves), sum(amount for _, amount in payees))


def claim_row(w3, addresses, sender, row: Row, proof: list[bytes]):
    return d.claim(w3, addresses, sender, row.epoch, row.index, row.account, row.amount, row.salt, proof)


@pytest.fixture(scope="module")
def w3() -> Web3:
    with keep_recursion_limit():
        provider = EthereumTesterProvider()  # a chain of its own: nothing shared with the anchoring tests
    return Web3(provider)


@pytest.fixture(scope="module")
def owner():
    return Account.from_key(DEV_PRIVATE_KEY)  # signs locally, as on a real chain


@pytest.fixture(scope="module")
def addresses(w3, owner) -> d.Addresses:
    addresses = d.deploy(w3, owner)
    d.mint(w3, addresses, owner, owner.address, MINTED)
    return addresses


@pytest.fixture(scope="module")
def distributor_contract(w3, addresses):
    return w3.eth.contract(address=addresses.distributor, abi=d.compile_contracts()["MerkleDistributor"].abi)


@pytest.fixture
def people(w3) -> dict[str, str]:
    accounts = w3.eth.accounts  # unlocked on eth-tester: the node signs for them
    return {"alice": accounts[1], "bob": accounts[2], "carol": Account.create().address, "relayer": accounts[3]}


def test_it_compiles_the_contracts_from_source_once():
    compiled = d.compile_contracts()
    assert set(compiled) == {"RewardToken", "MerkleDistributor"}
    names = {item.get("name") for item in compiled["MerkleDistributor"].abi}
    assert {"publish", "claim", "roots", "funded", "is_claimed", "Published", "Claimed"} <= names
    assert compiled["RewardToken"].bytecode.startswith("0x") and len(compiled["RewardToken"].bytecode) > 1000
    assert d.compile_contracts()["RewardToken"] is compiled["RewardToken"]  # cached by source hash


def test_it_pays_each_contributor_exactly_their_amount(w3, owner, people):
    addresses = d.deploy(w3, owner)  # a distributor of its own, so it must end empty whatever ran before
    d.mint(w3, addresses, owner, owner.address, MINTED)
    epoch = build_epoch(1, [(people["alice"], 3 * 10**18), (people["bob"], 15 * 10**17), (people["carol"], 250)])
    before = {name: d.balance_of(w3, addresses, people[name]) for name in ("alice", "bob", "carol")}

    published = d.publish_epoch(w3, addresses, owner, 1, epoch.root, epoch.total)
    assert [receipt["status"] for receipt in published] == [1, 1]  # approve, publish
    assert d.epoch_root(w3, addresses, 1) == epoch.root
    assert d.balance_of(w3, addresses, addresses.distributor) == epoch.total
    assert d.publish_epoch(w3, addresses, owner, 1, epoch.root, epoch.total) == []  # already there: nothing sent

    senders = [people["alice"], people["bob"], people["relayer"]]  # carol has no ETH: a relayer pays her gas
    claims = [
        claim_row(w3, addresses, sender, row, proof)
        for sender, row, proof in zip(senders, epoch.rows, epoch.proofs, strict=True)
    ]

    paid = {name: d.balance_of(w3, addresses, people[name]) - before[name] for name in ("alice", "bob", "carol")}
    assert paid == {"alice": 3 * 10**18, "bob": 15 * 10**17, "carol": 250}
    assert sum(paid.values()) == epoch.total
    assert d.balance_of(w3, addresses, addresses.distributor) == 0
    assert d.balance_of(w3, addresses, people["relayer"]) == 0
    assert all(d.claimed(w3, addresses, 1, row.index) for row in epoch.rows)
    assert not d.claimed(w3, addresses, 1, 3)
    print(
        f"\ngas: publish {sum(r['gasUsed'] for r in published)} "
        f"(approve {published[0]['gasUsed']} + publish {published[1]['gasUsed']}), "
        f"claims {[r['gasUsed'] for r in claims]} (relayed: the last)"
    )


def test_it_refuses_bad_claims_in_plain_words(w3, addresses, owner, people):
    epoch = build_epoch(2, [(people["alice"], 500), (people["bob"], 300), (people["carol"], 200)])
    d.publish_epoch(w3, addresses, owner, 2, epoch.root, epoch.total)
    (alice, bob, carol), (alice_proof, bob_proof, carol_proof) = epoch.rows, epoch.proofs
    claim_row(w3, addresses, people["alice"], alice, alice_proof)

    refusals = [
        (people["alice"], alice, alice_proof, "already claimed"),
        (people["bob"], carol._replace(account=people["bob"]), carol_proof, "invalid proof"),  # carol's row, to bob
        (people["bob"], bob, carol_proof, "invalid proof"),  # bob's row with another's proof
        (people["bob"], bob._replace(amount=301), bob_proof, "invalid proof"),
        (people["bob"], bob._replace(epoch=99), bob_proof, "epoch not published"),
    ]
    for sender, row, proof, reason in refusals:
        with pytest.raises(d.ContractReverted) as refused:
            claim_row(w3, addresses, sender, row, proof)
        assert refused.value.reason == reason, row

    claim_row(w3, addresses, people["relayer"], bob, bob_proof)  # the refusals left bob's row claimable
    assert d.balance_of(w3, addresses, addresses.distributor) == carol.amount


def test_it_lets_only_the_owner_publish_and_only_once(w3, addresses, owner, people, distributor_contract):
    epoch = build_epoch(3, [(people["alice"], 10), (people["bob"], 20)])
    with pytest.raises(d.ContractReverted) as refused:
        d.publish_epoch(w3, addresses, people["alice"], 3, epoch.root, epoch.total)
    assert refused.value.reason == "not the owner"
    assert d.epoch_root(w3, addresses, 3) is None

    d.publish_epoch(w3, addresses, owner, 3, epoch.root, epoch.total)
    with pytest.raises(d.DistributorError, match="already published with root"):
        d.publish_epoch(w3, addresses, owner, 3, bytes(31) + b"\x01", epoch.total)
    with pytest.raises(d.DistributorError, match="and total 30"):
        d.publish_epoch(w3, addresses, owner, 3, epoch.root, epoch.total + 1)
    with keep_recursion_limit():
        from eth_tester.exceptions import TransactionFailed
    with pytest.raises(TransactionFailed) as again:  # straight to the contract, past publish_epoch's check
        distributor_contract.functions.publish(3, epoch.root, 0).transact({"from": owner.address})
    assert d.revert_reason(again.value) == "epoch already published"
    assert d.epoch_root(w3, addresses, 3) == epoch.root


def test_it_refuses_to_publish_what_the_owner_cannot_fund(w3, addresses, owner, people):
    epoch = build_epoch(4, [(people["alice"], MINTED * 2)])
    with pytest.raises(d.ContractReverted) as refused:
        d.publish_epoch(w3, addresses, owner, 4, epoch.root, epoch.total)
    assert refused.value.reason == "balance too low"  # the token's reason, passed up by the distributor
    assert d.epoch_root(w3, addresses, 4) is None


def test_it_never_pays_an_epoch_more_than_it_was_funded_with(w3, addresses, owner, people):
    other = build_epoch(5, [(people["carol"], 1000)])
    d.publish_epoch(w3, addresses, owner, 5, other.root, other.total)
    greedy = build_epoch(6, [(people["alice"], 150), (people["bob"], 150)])
    d.publish_epoch(w3, addresses, owner, 6, greedy.root, 200)  # a tree promising more than its funding
    claim_row(w3, addresses, people["alice"], greedy.rows[0], greedy.proofs[0])
    with pytest.raises(d.ContractReverted) as refused:
        claim_row(w3, addresses, people["bob"], greedy.rows[1], greedy.proofs[1])
    assert refused.value.reason == "epoch pool exhausted"
    claim_row(w3, addresses, people["relayer"], other.rows[0], other.proofs[0])  # epoch 5's tokens are intact


def test_python_and_the_contract_agree_on_leaves_and_proofs(w3, distributor_contract):
    contract = distributor_contract.functions
    for n in (1, 2, 3, 5):
        epoch = build_epoch(n, [(Account.create().address, 10**18 + i) for i in range(n)])
        leaves = [d.leaf_hash(*row) for row in epoch.rows]
        assert [contract.leaf_hash(*row).call() for row in epoch.rows] == leaves
        for i, (leaf, proof) in enumerate(zip(leaves, epoch.proofs, strict=True)):
            assert d.merkle_proof(leaves, i) == proof
            other, root = leaves[(i + 1) % n], epoch.root
            cases = [
                (leaf, proof, root, True),
                (other, proof, root, n == 1),  # in a tree of one, the "other" leaf is this leaf
                (leaf, [*proof, leaf], root, False),
                (leaf, proof, bytes(32), False),
            ]
            if proof:
                flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
                cases += [(leaf, proof[:-1], root, False), (leaf, [flipped, *proof[1:]], root, False)]
            for leaf_, proof_, root_, expected in cases:
                assert d.verify(leaf_, proof_, root_) is expected, (n, i)
                assert contract.verify_proof(leaf_, proof_, root_).call() is expected, (n, i)


def test_its_trees_are_openzeppelin_standard_merkle_trees():
    """Roots that @openzeppelin/merkle-tree 1.0.8 gives for these rows with StandardMerkleTree.of(rows,
    ["uint256", "uint256", "address", "uint256", "bytes32"]): anyone can recompute an epoch's root."""
    amounts = [10**18, 25 * 10**17, 42, 7, 123456789]
    rows = [Row(7, i, "0x" + str(i + 1) * 40, amounts[i], bytes([i + 1]) * 32) for i in range(5)]
    expected = {
        1: "2596f72feb98f4492a8f073bf1da075bf4da46d49aeb5b8ea41cd110dde83a9e",
        2: "b147380c0aa8abd6c90825eaf9611c57b1bf8ad21d3634c9e25abbb1aa0d3751",
        3: "078cadc2d1015cfa4227b7792a1c4a949013965502c423f222e01b519f7e5499",
        5: "ec1269f814260142970216485bb689e9788dc08b79b57f88354bf2743b88cd8f",
    }
    for n, root in expected.items():
        leaves = [d.leaf_hash(*row) for row in rows[:n]]
        assert d.merkle_root(leaves).hex() == root
        assert d.merkle_root(leaves[::-1]).hex() == root  # the order of the rows does not matter
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        d.leaf_hash(7, 0, rows[0].account, 1, b"\x01" * 16)  # a short salt is refused, not zero-padded
    with pytest.raises(ValueError, match="at least one leaf"):
        d.merkle_root([])


def test_it_reads_revert_reasons_the_way_nodes_report_them():
    data = "0x08c379a0" + abi_encode(["string"], ["already claimed"]).hex()
    assert d.revert_reason(ContractLogicError("execution reverted", data=data)) == "already claimed"  # geth: code 3
    assert d.revert_reason(ContractLogicError("execution reverted: invalid proof")) == "invalid proof"
    assert d.revert_reason(ContractLogicError("execution reverted", data=None)) == "reverted without a reason"
    assert d.revert_reason(Web3RPCError("insufficient funds for gas * price + value")) is None
