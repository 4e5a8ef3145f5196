"""Demo Datanets for `make run`: a public one of instruction records written for
this project (datanets/demo_data.py, CC0-1.0) and a permissioned one."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.db import transaction

from datanets import services
from datanets.demo_data import LICENCE, demo_records
from datanets.models import Datanet, Membership, Role

# Shown to everyone, the owner included: it must not tell its own members to ask for access.
CLINIC_DESCRIPTION = "A permissioned Datanet of demo clinic notes: only its members read the records."
OLD_CLINIC_DESCRIPTION = "A permissioned Datanet: ask the owner for access to read its records."


def _user(username: str, email: str):
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
    if created:
        user.set_unusable_password()
        user.save()
    return user


@transaction.atomic
def seed_datanets(owner) -> list[Datanet]:
    """Create the demo Datanets once; later calls leave them as they are."""
    existing = list(Datanet.objects.filter(slug__in=["fine-tuning-glossary", "clinic-notes-demo"]))
    if len(existing) == 2:
        Datanet.objects.filter(description=OLD_CLINIC_DESCRIPTION).update(description=CLINIC_DESCRIPTION)
        return existing
    Datanet.objects.filter(slug__in=["fine-tuning-glossary", "clinic-notes-demo"]).delete()
    validator = _user("demo-validator", "validator@example.com")
    glossary = services.create_datanet(
        owner,
        name="Fine-tuning glossary",
        slug="fine-tuning-glossary",
        description="Questions and answers about fine-tuning terms, written for ModelFactory's demo.",
        domain_tags=["ml", "education"],
        licence=LICENCE,
        visibility="public",
        schema="instruction",
    )
    Membership.objects.create(datanet=glossary, user=validator, role=Role.VALIDATOR)
    clinic = services.create_datanet(
        owner,
        name="Clinic notes (demo)",
        slug="clinic-notes-demo",
        description=CLINIC_DESCRIPTION,
        domain_tags=["medical"],
        licence=LICENCE,
        visibility="permissioned",
        schema="instruction",
    )
    Membership.objects.create(datanet=clinic, user=validator, role=Role.VALIDATOR)

    records = demo_records()
    for datanet, rows in ((glossary, records), (clinic, records[:25])):
        data = "\n".join(json.dumps(r) for r in rows).encode()
        batch = services.start_upload(owner, datanet, "demo.jsonl", data, {})
        waiting = list(batch.rows.filter(status="pending").values_list("pk", flat=True))
        if waiting:  # the owner's upload is accepted at once under the default review policy
            services.decide_many(validator, datanet, waiting, "accept")
    return [glossary, clinic]
