from __future__ import annotations

import pytest

from datanets.demo_data import demo_records
from datanets.models import Membership, Role
from tests.factories import succeeded_job
from training.models import TrainingDataset


@pytest.fixture
def corpus(make_datanet, accepted, make_user, user):
    """A public glossary Datanet (carol's records) and a private one (dave's) that alice may read."""
    carol, dave = make_user("carol"), make_user("dave")
    public = make_datanet(slug="glossary", owner=make_user("gowner"))
    Membership.objects.create(datanet=public, user=carol, role=Role.CONTRIBUTOR)
    accepted(public, demo_records()[:40], contributor=carol)
    private = make_datanet(slug="secret-lab", visibility="private", owner=make_user("powner"))
    Membership.objects.create(datanet=private, user=dave, role=Role.CONTRIBUTOR)
    Membership.objects.create(datanet=private, user=user, role=Role.VIEWER)
    secret = {"instruction": "What is the quorvex protocol?", "input": "",
              "output": "The quorvex protocol seals lab notebooks with a blue wax stamp."}  # fmt: skip
    accepted(private, [secret], contributor=dave)
    return {"public": public, "private": private, "carol": carol, "dave": dave}


@pytest.fixture
def trained_model(corpus, user, serving_base, make_adapters):
    """A succeeded job of alice's that trained on both Datanets (an adapter from the serving fixtures)."""
    (adapter,) = make_adapters(1)
    job = succeeded_job(user, "Lab tutor", serving_base, adapter)
    for datanet in (corpus["public"], corpus["private"]):
        version = datanet.current_version
        TrainingDataset.objects.create(job=job, datanet=datanet, version=version, size=version.size, root=version.root)
    return job


@pytest.fixture
def indexed(corpus):
    from attribution.indexing import sync_index

    for key in ("public", "private"):
        sync_index(corpus[key].pk)
    return corpus
