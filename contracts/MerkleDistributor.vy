# pragma version 0.4.3
"""
@title ModelFactory reward distributor
@notice Pays reward epochs by Merkle proof (the "airdrop" pattern). The owner closes an epoch
        with one transaction, publish(), that stores the epoch's root and pulls the epoch's
        total from the owner (the owner approves this contract on the token first). Anyone may
        then submit a claim for a row of the epoch (a relayer may pay the gas); the tokens
        always go to the row's account, once.

        Leaf of a row: keccak256(keccak256(abi_encode(epoch, index, account, amount, salt))),
        OpenZeppelin StandardMerkleTree's leaf for the types
        (uint256, uint256, address, uint256, bytes32). Inner node: keccak256 of its two
        children, smaller first. attribution/engine/distributor.py builds the same trees.
"""

from ethereum.ercs import IERC20

event Published:
    epoch: indexed(uint256)
    root: bytes32
    total: uint256

event Claimed:
    epoch: indexed(uint256)
    index: indexed(uint256)
    account: indexed(address)
    amount: uint256

MAX_PROOF: constant(uint256) = 64

token: public(immutable(IERC20))
owner: public(address)
roots: public(HashMap[uint256, bytes32])
funded: public(HashMap[uint256, uint256])
paid: public(HashMap[uint256, uint256])
# epoch -> word -> bits: row `index` is bit index % 256 of word index // 256 (one slot per 256 rows).
claimed_words: HashMap[uint256, HashMap[uint256, uint256]]


@deploy
def __init__(token_: IERC20):
    token = token_
    self.owner = msg.sender


@external
def publish(epoch: uint256, root: bytes32, total: uint256):
    assert msg.sender == self.owner, "not the owner"
    assert root != empty(bytes32), "empty root"
    assert self.roots[epoch] == empty(bytes32), "epoch already published"
    self.roots[epoch] = root
    self.funded[epoch] = total
    assert extcall token.transferFrom(msg.sender, self, total, default_return_value=True), "funding failed"
    log Published(epoch=epoch, root=root, total=total)


@external
def claim(
    epoch: uint256,
    index: uint256,
    account: address,
    amount: uint256,
    salt: bytes32,
    proof: DynArray[bytes32, MAX_PROOF],
):
    root: bytes32 = self.roots[epoch]
    assert root != empty(bytes32), "epoch not published"
    # A row without a wallet commits to the zero address: it is in the ledger, never paid (nor burned).
    assert account != empty(address), "no account"
    word: uint256 = index >> 8
    bit: uint256 = 1 << (index & 255)
    bits: uint256 = self.claimed_words[epoch][word]
    assert bits & bit == 0, "already claimed"
    assert self._verify(self._leaf(epoch, index, account, amount, salt), proof, root), "invalid proof"
    # A tree that promises more than the epoch was funded with cannot spend other epochs' tokens.
    paid_after: uint256 = self.paid[epoch] + amount
    assert paid_after <= self.funded[epoch], "epoch pool exhausted"
    self.claimed_words[epoch][word] = bits | bit
    self.paid[epoch] = paid_after
    assert extcall token.transfer(account, amount, default_return_value=True), "payment failed"
    log Claimed(epoch=epoch, index=index, account=account, amount=amount)


@view
@external
def is_claimed(epoch: uint256, index: uint256) -> bool:
    return self.claimed_words[epoch][index >> 8] & (1 << (index & 255)) != 0


@pure
@external
def leaf_hash(epoch: uint256, index: uint256, account: address, amount: uint256, salt: bytes32) -> bytes32:
    return self._leaf(epoch, index, account, amount, salt)


@pure
@external
def verify_proof(leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF], root: bytes32) -> bool:
    return self._verify(leaf, proof, root)


@pure
@internal
def _leaf(epoch: uint256, index: uint256, account: address, amount: uint256, salt: bytes32) -> bytes32:
    return keccak256(keccak256(abi_encode(epoch, index, account, amount, salt)))


@pure
@internal
def _verify(leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF], root: bytes32) -> bool:
    node: bytes32 = leaf
    for sibling: bytes32 in proof:
        if convert(node, uint256) < convert(sibling, uint256):
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
    return node == root
