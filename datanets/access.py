"""Who may do what with a Datanet: the one module every page, API view, admin
class, consumer and task asks (the README's "Who may do what" table describes it).

Roles rank viewer < contributor < validator < owner; each includes the ones
below. The Datanet's `owner` field is always an owner; superusers act as owners.
"""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from datanets.models import ROLE_RANK, Datanet, Membership, Role, Visibility


class Action(StrEnum):
    SEE = "see the card"
    READ = "read records"
    CONTRIBUTE = "contribute"
    VALIDATE = "validate"
    MANAGE = "manage members and requests"
    TRAIN = "train on it"
    REQUEST = "request access"


def role_of(user, datanet: Datanet) -> Role | None:
    if user is None or not user.is_authenticated:
        return None
    if user.is_superuser or datanet.owner_id == user.pk:
        return Role.OWNER
    cache = getattr(user, "_datanet_roles", None)
    if cache is None:
        cache = user._datanet_roles = {}
    if datanet.pk not in cache:
        cache[datanet.pk] = Membership.objects.filter(datanet=datanet, user=user).values_list("role", flat=True).first()
    role = cache[datanet.pk]
    return Role(role) if role else None


def _at_least(role: Role | None, minimum: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[minimum]


def can(user, action: Action, datanet: Datanet) -> bool:
    role = role_of(user, datanet)
    signed_in = user is not None and user.is_authenticated
    public = datanet.visibility == Visibility.PUBLIC
    if action == Action.SEE:
        return datanet.visibility != Visibility.PRIVATE or role is not None
    if action == Action.READ:
        return public or _at_least(role, Role.VIEWER)
    if action == Action.CONTRIBUTE:
        return (public and signed_in) or _at_least(role, Role.CONTRIBUTOR)
    if action == Action.VALIDATE:
        return _at_least(role, Role.VALIDATOR)
    if action == Action.MANAGE:
        return role == Role.OWNER
    if action == Action.TRAIN:
        return (public and signed_in) or _at_least(role, Role.VIEWER)
    if action == Action.REQUEST:
        return signed_in and datanet.visibility != Visibility.PRIVATE and role not in (Role.OWNER, Role.VALIDATOR)
    raise ValueError(action)


def _member_filter(user, minimum: Role) -> Q:
    roles = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[minimum]]
    return Q(owner=user) | Q(memberships__user=user, memberships__role__in=roles)


def visible_to(user) -> QuerySet[Datanet]:
    """Datanets whose card the user may see (private ones only for members)."""
    qs = Datanet.objects.all()
    if user is not None and user.is_authenticated and user.is_superuser:
        return qs
    q = ~Q(visibility=Visibility.PRIVATE)
    if user is not None and user.is_authenticated:
        q |= _member_filter(user, Role.VIEWER)
    return qs.filter(q).distinct()


def readable_by(user) -> QuerySet[Datanet]:
    """Datanets whose records the user may read."""
    qs = Datanet.objects.all()
    if user is not None and user.is_authenticated and user.is_superuser:
        return qs
    q = Q(visibility=Visibility.PUBLIC)
    if user is not None and user.is_authenticated:
        q |= _member_filter(user, Role.VIEWER)
    return qs.filter(q).distinct()


def trainable_by(user) -> QuerySet[Datanet]:
    if user is None or not user.is_authenticated:
        return Datanet.objects.none()
    return readable_by(user)


def managed_by(user) -> QuerySet[Datanet]:
    if user is None or not user.is_authenticated:
        return Datanet.objects.none()
    if user.is_superuser:
        return Datanet.objects.all()
    return Datanet.objects.filter(Q(owner=user) | Q(memberships__user=user, memberships__role=Role.OWNER)).distinct()


def get_for(user, slug: str, action: Action = Action.SEE) -> Datanet:
    """The Datanet if the user may do `action`; 404 if they may not even see it.

    Callers that need a 403 for a visible Datanet check `can()` themselves.
    """
    datanet = Datanet.objects.filter(slug=slug).select_related("owner").first()
    if datanet is None or not can(user, Action.SEE, datanet):
        raise Http404("No such Datanet.")
    if action != Action.SEE and not can(user, action, datanet):
        raise PermissionDenied(f"You may not {action} in this Datanet.")
    return datanet
