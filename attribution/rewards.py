"""Reward epochs: a pool split across contributors in proportion to their positive
influence on answers, less reputation penalties, written as a ledger whose rows are
the leaves of a Merkle tree: since on-chain payment, the distributor's keccak tree (attribution/ledger.py).

Credit: every scored answer hands out one unit of credit, split across the
contributions that influenced it in proportion to their combined scores; a
contributor's credit is the sum over their contributions. Each contributor's share
of the pool is credit / total credit (largest-remainder rounding, so the shares sum
to the pool exactly). Penalty: contributors whose reputation (credit-weighted over
the Datanets the credit came from) is under REPUTATION_FLOOR lose that fraction of
their share, (floor − reputation) / floor; withheld units roll into the next epoch.
Wallets: a row pays the wallet its contributor had linked when the epoch closed. A contributor
without one is paid nothing on chain for that epoch; the units are carried into their row of
the next epoch (carried_in), so linking a wallet later loses nothing.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Wallet
from attribution.anchoring import anchor_epoch
from attribution.ledger import claim_fields, leaf, leaf_hashes, ledger_root, payable, proof, root_of
from attribution.models import AnswerInfluence, RewardEntry, RewardEpoch
from datanets.models import ContributorStanding, reputation

__all__ = ["close_epoch", "credits", "entry_proof", "ledger_root", "open_epoch", "split", "RewardError"]

REPUTATION_FLOOR = 0.5


class RewardError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def open_epoch() -> RewardEpoch:
    epoch = RewardEpoch.objects.filter(status=RewardEpoch.Status.OPEN).order_by("number").first()
    if epoch is None:
        last = RewardEpoch.objects.order_by("-number").first()
        # The first epoch covers everything scored so far; later ones start where the last ended.
        first = AnswerInfluence.objects.order_by("created_at").values_list("created_at", flat=True).first()
        starts = last.ends_at if last else min(filter(None, [first, timezone.now()]))
        epoch = RewardEpoch.objects.create(number=(last.number + 1) if last else 1, starts_at=starts)
    return epoch


def credits(since, until) -> tuple[dict[int, Decimal], dict[int, dict[int, Decimal]], int]:
    """(credit per contributor, credit per contributor per Datanet, answers counted)."""
    per_answer: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    rows = AnswerInfluence.objects.filter(
        created_at__gte=since, created_at__lt=until, score__gt=0, answer__status="succeeded"
    ).values_list("answer_id", "contribution__contributor_id", "contribution__datanet_id", "score")
    for answer_id, user_id, datanet_id, score in rows:
        per_answer[answer_id].append((user_id, datanet_id, score))
    total: dict[int, Decimal] = defaultdict(Decimal)
    by_datanet: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for parts in per_answer.values():
        norm = Decimal(repr(sum(s for _, _, s in parts)))
        for user_id, datanet_id, score in parts:
            share = Decimal(repr(score)) / norm
            total[user_id] += share
            by_datanet[user_id][datanet_id] += share
    return dict(total), by_datanet, len(per_answer)


def split(pool: int, weights: dict[int, Decimal]) -> dict[int, int]:
    """Largest-remainder split of an integer pool; ties go to the lower id."""
    whole = sum(weights.values())
    if not weights or whole <= 0:
        return {}
    exact = {k: Decimal(pool) * w / whole for k, w in weights.items()}
    shares = {k: int(v) for k, v in exact.items()}
    left = pool - sum(shares.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - shares[k]), k))[:left]:
        shares[k] += 1
    return shares


def _reputation(user_id: int, by_datanet: dict[int, Decimal]) -> float:
    standings = {
        s.datanet_id: reputation(s.accepted, s.rejected, s.malicious)
        for s in ContributorStanding.objects.filter(user_id=user_id, datanet_id__in=by_datanet)
    }
    whole = sum(by_datanet.values())
    return float(sum(w * Decimal(repr(standings.get(d, 0.5))) for d, w in by_datanet.items()) / whole)


def _carried(previous: RewardEpoch | None) -> dict[int, int]:
    """Units of the previous epoch's rows that could not be paid on chain (no wallet when it closed)."""
    if previous is None or previous.leaf_scheme == "json":
        return {}
    rows = previous.entries.filter(wallet="", amount__gt=0).values_list("contributor_id", "amount")
    return dict(rows)


def _entries(epoch: RewardEpoch, gross: dict[int, int], total, by_datanet, carried: dict[int, int]) -> list:
    wallets = dict(
        Wallet.objects.filter(user_id__in={*gross, *carried}).order_by("linked_at").values_list("user_id", "address")
    )  # the latest linked wallet wins
    entries = []
    for index, user_id in enumerate(sorted({*gross, *carried})):
        share = gross.get(user_id, 0)
        rep = _reputation(user_id, by_datanet[user_id]) if user_id in by_datanet else 1.0
        rate = max(0.0, (REPUTATION_FLOOR - rep) / REPUTATION_FLOOR)
        penalty = int(share * Decimal(repr(rate)))
        entries.append(
            RewardEntry(epoch=epoch, contributor_id=user_id, wallet=wallets.get(user_id, ""),
                        influence=float(total.get(user_id, 0)), reputation=rep, gross=share, penalty=penalty,
                        carried_in=carried.get(user_id, 0), amount=share - penalty + carried.get(user_id, 0),
                        index=index, salt=secrets.token_hex(32))
        )  # fmt: skip
    return entries


def close_epoch(pool: int | None = None) -> RewardEpoch:
    """Close the open epoch: split its pool, write the ledger and its root, and anchor it (on chain, the
    distributor is funded with the rows that have a wallet and publishes the root for claims)."""
    if pool is not None and (not isinstance(pool, int) or pool < 0 or pool > 10**30):
        raise RewardError("The pool is a whole number of base units, 0 or more.")
    with transaction.atomic():
        epoch = RewardEpoch.objects.select_for_update().get(pk=open_epoch().pk)
        now = timezone.now()
        previous = RewardEpoch.objects.filter(number__lt=epoch.number).order_by("-number").first()
        epoch.pool = (
            pool if pool is not None else settings.REWARD_POOL_PER_EPOCH + (previous.withheld if previous else 0)
        )
        total, by_datanet, answers = credits(epoch.starts_at, now)
        entries = _entries(epoch, split(epoch.pool, total), total, by_datanet, _carried(previous))
        RewardEntry.objects.bulk_create(entries)
        epoch.distributed = sum(e.gross - e.penalty for e in entries)
        epoch.withheld = epoch.pool - epoch.distributed
        epoch.funded = sum(payable(e) for e in entries)
        epoch.answers, epoch.ends_at, epoch.status = answers, now, RewardEpoch.Status.CLOSED
        epoch.leaf_scheme = "keccak"
        epoch.root = root_of(epoch, entries)
        epoch.save()
        RewardEpoch.objects.create(number=epoch.number + 1, starts_at=now)
        anchor_epoch(epoch)
    return epoch


def entry_proof(epoch: RewardEpoch, entry: RewardEntry) -> dict:
    """The row's leaf and its inclusion proof against the epoch's root (what a claim or an audit needs)."""
    found = {"epoch": epoch.number, "root": epoch.root, "scheme": epoch.leaf_scheme,
             "tree_size": epoch.entries.count(), "leaf_index": entry.index,
             "leaf_hash": leaf_hashes(epoch, [entry])[0].hex(), "proof": proof(epoch, entry)}  # fmt: skip
    if epoch.leaf_scheme == "json":
        found["leaf"] = leaf(epoch.number, entry).decode()
    else:
        found["leaf"] = claim_fields(epoch.number, entry)
    return found
