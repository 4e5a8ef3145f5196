from __future__ import annotations

import json

import pytest

from datanets import services
from datanets.models import Datanet, Membership, Role


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def alpaca(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(start, start + n)]


@pytest.fixture
def make_datanet(make_user):
    def make(owner=None, visibility="public", schema="instruction", slug="legal-qa", **extra):
        owner = owner or make_user("owner")
        return Datanet.objects.create(
            owner=owner, name=slug.replace("-", " ").title(), slug=slug, visibility=visibility, schema=schema,
            licence="CC-BY-4.0", **extra,
        )  # fmt: skip

    return make


@pytest.fixture
def roles(make_user):
    """One user per role (and one stranger) for a Datanet."""

    def make(datanet):
        people = {"owner": datanet.owner, "stranger": make_user("stranger")}
        for role in (Role.VIEWER, Role.CONTRIBUTOR, Role.VALIDATOR):
            people[role.value] = make_user(role.value)
            Membership.objects.create(datanet=datanet, user=people[role.value], role=role)
        return people

    return make


@pytest.fixture
def accepted(make_user):
    """Upload rows as a contributor and have a validator accept them all."""

    def make(datanet, rows: list[dict], contributor=None, validator=None):
        contributor = contributor or datanet.owner
        batch = services.start_upload(contributor, datanet, "rows.jsonl", jsonl(rows), {})
        assert batch.status == "succeeded", (batch.message, batch.errors)
        if validator is None:
            validator = make_user(f"val{datanet.pk}{batch.pk}")
            Membership.objects.create(datanet=datanet, user=validator, role=Role.VALIDATOR)
        ids = list(batch.rows.values_list("pk", flat=True))
        services.decide_many(validator, datanet, ids, "accept")
        return batch

    return make
