"""Keeping a Datanet's retrieval index in step with its accepted records."""

from __future__ import annotations

import shutil

import pytest

from attribution.engine import index as retrieval
from attribution.indexing import index_folder, sync_index
from datanets.demo_data import demo_records
from datanets.models import Contribution

pytestmark = pytest.mark.django_db


def test_it_follows_accepts_and_removals_and_rebuilds_a_lost_index(make_datanet, accepted):
    datanet = make_datanet(slug="indexed")
    accepted(datanet, demo_records()[:6])
    state = sync_index(datanet.pk)
    assert state.records == 6 and state.generation == 1
    assert sync_index(datanet.pk).generation == 1  # nothing changed: no new generation
    gone = Contribution.objects.filter(datanet=datanet).first()
    Contribution.objects.filter(pk=gone.pk).update(status="rejected")
    assert sync_index(datanet.pk).generation == 2
    index = retrieval.DatanetIndex.open(index_folder(datanet.pk))  # what a restarted worker reads
    assert len(index) == 5 and gone.pk not in index.texts()
    shutil.rmtree(index_folder(datanet.pk))
    state = sync_index(datanet.pk)
    assert state.records == 5 and len(retrieval.DatanetIndex.open(index_folder(datanet.pk))) == 5


def test_a_deleted_datanet_loses_its_index(make_datanet):
    datanet = make_datanet(slug="short-lived")  # one with records cannot be deleted: its log protects them
    sync_index(datanet.pk)
    folder = index_folder(datanet.pk)
    assert folder.exists()
    assert sync_index(10**9) is None
    datanet.delete()
    assert not folder.exists()
