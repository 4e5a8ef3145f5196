import pytest

from datanets import services
from datanets.models import Datanet
from datanets.seed import LICENCE, seed_datanets

pytestmark = pytest.mark.django_db


def test_the_demo_seed_makes_a_public_and_a_permissioned_datanet_once(make_user):
    owner = make_user("demo")
    glossary, clinic = seed_datanets(owner)
    assert (glossary.visibility, clinic.visibility) == ("public", "permissioned")
    assert glossary.licence == LICENCE
    assert glossary.contributions.filter(status="accepted").count() >= 250
    assert services.verify(glossary) == []
    seed_datanets(owner)
    assert Datanet.objects.count() == 2
