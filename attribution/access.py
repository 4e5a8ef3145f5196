"""Who may see which attribution rows: one helper per kind, used by pages, API and admin."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from attribution.models import Anchor
from datanets.access import readable_by, visible_to
from datanets.models import Contribution


def readable_record(user, contribution_id: int) -> Contribution:
    """A record the viewer may read (accepted, in a readable Datanet, or their own); else 404."""
    q = Q(datanet__in=readable_by(user), status=Contribution.Status.ACCEPTED)
    if user.is_authenticated:
        q |= Q(contributor=user)
    row = Contribution.objects.filter(q, pk=contribution_id).select_related("datanet", "contributor").first()
    if row is None:
        raise Http404("No such record.")
    return row


def visible_anchors(user) -> QuerySet[Anchor]:
    """Reward-epoch roots are public; a Datanet version's root shows where its card does."""
    return Anchor.objects.filter(
        Q(kind=Anchor.Kind.REWARD_EPOCH) | Q(version__datanet__in=visible_to(user))
    ).select_related("version__datanet", "epoch")
