"""REST: record and model attribution, reward epochs and the caller's ledger rows, anchors and verification."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from attribution import anchoring, distribution, rewards
from attribution.access import readable_record, visible_anchors
from attribution.models import ContributionInfluence, RewardEntry, RewardEpoch
from core.api import OBJECT, OBJECTS
from training.services import visible_jobs


def _anchor(a) -> dict:
    return {"id": a.pk, "kind": a.kind, "ref": a.ref, "root": a.root, "status": a.status, "tx_hash": a.tx_hash or None,
            "block_number": a.block_number, "chain_id": a.chain_id, "attempts": a.attempts,
            "last_error": a.last_error if a.status == "pending" else ""}  # fmt: skip


class AnchorViewSet(viewsets.ViewSet):
    """Anchored roots; the detail recomputes the root from the database and checks the chain."""

    permission_classes = [permissions.AllowAny]
    throttle_scope = "verify"  # each detail recomputes a Merkle root and reads the chain

    @extend_schema(operation_id="anchors_list", responses={200: OBJECT})  # a list of them: spectacular wraps list
    def list(self, request):
        return Response([_anchor(a) for a in visible_anchors(request.user)[:500]])

    @extend_schema(responses={200: OBJECT}, parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        row = visible_anchors(request.user).filter(pk=int(pk) if str(pk).isdigit() else -1).first()
        if row is None:
            raise NotFound("No such anchor.")
        return Response(_anchor(row) | {"verification": anchoring.checked(row)})

    @extend_schema(
        responses={200: OBJECT},
        parameters=[OpenApiParameter("root", str, required=True, pattern="^(0x)?[0-9a-fA-F]{64}$")],
    )
    @action(detail=False, methods=["get"])
    def verify(self, request):
        """Verify by root: ?root=<64 hex chars>."""
        root = request.query_params.get("root", "").lower().removeprefix("0x")
        if len(root) != 64 or any(c not in "0123456789abcdef" for c in root):
            raise ValidationError({"root": "A root is 64 hexadecimal characters."})
        row = visible_anchors(request.user).filter(root=root).first()
        if row is None:
            raise NotFound("No anchored root matches; it was never recorded here or you may not see it.")
        return Response(_anchor(row) | {"verification": anchoring.checked(row)})


class ContributionAttributionViewSet(viewsets.ViewSet):
    """A record's influence on the models the caller may see."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: OBJECT}, parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        row = readable_record(request.user, int(pk) if str(pk).isdigit() else -1)
        scores = ContributionInfluence.objects.filter(contribution=row, run__job__in=visible_jobs(request.user))
        return Response({
            "contribution": row.pk, "datanet": row.datanet.slug, "contributor": row.contributor.get_username(),
            "models": [{"model": s.run.job.model_id, "method": s.run.method, "score": s.score,
                        "data_versions": s.run.data_versions} for s in scores.select_related("run__job")],
            "answers_influenced": row.answer_influences.count(),
        })  # fmt: skip


class RewardViewSet(viewsets.ViewSet):
    """Closed epochs (public totals and roots) and the caller's own ledger rows with proofs."""

    @extend_schema(operation_id="rewards_list", responses={200: OBJECT})
    def list(self, request):
        epochs = RewardEpoch.objects.filter(status="closed").select_related("anchor")[:200]
        return Response([{"epoch": e.number, "pool": e.pool, "distributed": e.distributed, "withheld": e.withheld,
                          "answers": e.answers, "root": e.root, "ends_at": e.ends_at.isoformat(),
                          "anchor": _anchor(e.anchor) if hasattr(e, "anchor") else None} for e in epochs])  # fmt: skip

    @extend_schema(responses={200: OBJECTS})
    @action(detail=False, methods=["get"])
    def mine(self, request):
        """The caller's rows: amounts, the Merkle proof, and for epochs paid on chain the claim state
        (claimed / unclaimed / not anchored / no wallet) with everything a wallet or script needs to claim:
        the leaf's fields, the contract addresses, the chain id, the claim ABI and ready calldata."""
        entries = RewardEntry.objects.filter(contributor=request.user).select_related("epoch", "epoch__anchor")
        return Response([{"epoch": e.epoch.number, "influence": e.influence, "reputation": e.reputation,
                          "gross": e.gross, "penalty": e.penalty, "carried_in": e.carried_in, "amount": e.amount,
                          "wallet": e.wallet or None, "claim_state": distribution.claim_state(e),
                          "claim_tx": e.claim_tx or None, "claim": distribution.claim_payload(e),
                          "proof": rewards.entry_proof(e.epoch, e)} for e in entries])  # fmt: skip

    @extend_schema(
        request=None,
        responses={200: OBJECT, 503: OpenApiResponse(OBJECT, description="The chain could not be reached; retry.")},
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The epoch number.")],
    )
    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        """Claim the caller's reward for an epoch through the server, which sends the transaction and pays its
        gas (where the site relays claims; else claim from a wallet with the payload of `mine`)."""
        entry = distribution.own_entry(request.user, int(pk) if str(pk).isdigit() else -1)
        if entry is None:
            raise NotFound("You have no reward in this epoch.")
        try:
            tx_hash = distribution.relay_claim(entry)
        except distribution.ClaimRefused as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response({"epoch": entry.epoch.number, "amount": entry.amount, "account": entry.wallet,
                         "tx_hash": tx_hash})  # fmt: skip
