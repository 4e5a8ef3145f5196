"""Uploads are all-or-nothing, votes settle contributions, the log detects tampering."""

from __future__ import annotations

import pytest

from datanets import merkle, services
from datanets.models import Contribution, ContributorStanding, DatanetVersion, Membership, Role, reputation
from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db


def test_an_upload_with_bad_rows_stores_nothing_and_names_each_row(make_datanet):
    datanet = make_datanet()
    rows = alpaca(3)
    rows[1] = {"instruction": "", "output": "x"}
    data = jsonl(rows) + b"\n{broken"
    batch = services.start_upload(datanet.owner, datanet, "bad.jsonl", data, {})
    assert batch.status == "failed" and "nothing was stored" in batch.message
    assert [(e["row"], e["field"]) for e in batch.errors] == [(2, "instruction"), (4, "")]
    assert "required and empty" in batch.errors[0]["message"] and "Not valid JSON" in batch.errors[1]["message"]
    assert not Contribution.objects.exists()


def test_duplicates_are_reported_and_skipped(make_datanet):
    datanet = make_datanet()
    services.start_upload(datanet.owner, datanet, "a.jsonl", jsonl(alpaca(3)), {})
    batch = services.start_upload(datanet.owner, datanet, "b.jsonl", jsonl(alpaca(5) + alpaca(1)), {})
    assert (batch.rows_added, batch.rows_duplicate) == (2, 4)
    assert Contribution.objects.count() == 5


def test_acceptance_appends_to_the_log_and_cuts_a_version(make_datanet, accepted):
    datanet = make_datanet()
    accepted(datanet, alpaca(5))
    accepted(datanet, alpaca(3, start=5))
    v1, v2 = DatanetVersion.objects.filter(datanet=datanet).order_by("number")
    assert (v1.size, v2.size) == (5, 8)
    record = Contribution.objects.get(datanet=datanet, log_index=2)
    proof = services.inclusion(datanet, record, v1)
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 2, 5, [bytes.fromhex(p) for p in proof["proof"]], bytes.fromhex(v1.root)
    )
    cons = services.consistency(datanet, v1, v2)
    assert merkle.verify_consistency(
        5, 8, bytes.fromhex(v1.root), bytes.fromhex(v2.root), [bytes.fromhex(p) for p in cons["proof"]]
    )
    assert services.verify(datanet) == []


def test_changing_a_stored_record_makes_verification_fail(make_datanet, accepted):
    datanet = make_datanet()
    accepted(datanet, alpaca(4))
    record = Contribution.objects.get(datanet=datanet, log_index=1)
    Contribution.objects.filter(pk=record.pk).update(content={**record.content, "output": "Tampered."})
    problems = services.verify(datanet)
    assert any(f"Record #{record.pk}" in p for p in problems)
    assert any("Version 1 no longer matches" in p for p in problems)


def test_rejections_cut_reputation_and_hold_then_refuse_uploads(make_datanet, make_user):
    datanet = make_datanet()
    spammer, validator = make_user("spammer"), make_user("val")
    Membership.objects.create(datanet=datanet, user=validator, role=Role.VALIDATOR)
    first, second, third = services.start_upload(spammer, datanet, "s.jsonl", jsonl(alpaca(3)), {}).rows.all()
    services.vote(validator, first, "reject", "off topic")
    assert services.votes_needed(datanet, spammer) == 1  # 1/3 ≈ 0.33
    services.vote(validator, second, "reject", "off topic again")
    assert services.votes_needed(datanet, spammer) == 2  # 1/4 = 0.25: held for two validators
    services.vote(validator, third, "reject", "poisoned answers", malicious=True)  # 1/5 - 0.25 → 0
    with pytest.raises(services.DatanetError, match="refused"):
        services.start_upload(spammer, datanet, "t.jsonl", jsonl(alpaca(1, start=50)), {})
    assert ContributorStanding.objects.get(user=spammer).malicious == 1


def test_held_contributions_need_two_accepting_validators(make_datanet, make_user):
    datanet = make_datanet()
    newcomer = make_user("newcomer")
    ContributorStanding.objects.create(datanet=datanet, user=newcomer, accepted=0, rejected=3)  # 0.2 → held
    v1, v2 = make_user("v1"), make_user("v2")
    for v in (v1, v2):
        Membership.objects.create(datanet=datanet, user=v, role=Role.VALIDATOR)
    batch = services.start_upload(newcomer, datanet, "n.jsonl", jsonl(alpaca(1)), {})
    row = batch.rows.get()
    assert row.needs_votes == 2
    assert services.vote(v1, row, "accept").status == "pending"
    assert services.vote(v2, row, "accept").status == "accepted"


def test_validators_cannot_vote_twice_or_on_their_own_rows(make_datanet, make_user):
    datanet = make_datanet(review_policy="votes")
    validator = make_user("val")
    Membership.objects.create(datanet=datanet, user=validator, role=Role.VALIDATOR)
    own = services.start_upload(validator, datanet, "o.jsonl", jsonl(alpaca(1)), {}).rows.get()
    with pytest.raises(services.DatanetError, match="your own"):
        services.vote(validator, own, "accept")
    with pytest.raises(services.DatanetError, match="Give a reason"):
        services.vote(datanet.owner, own, "reject")


def test_the_reputation_formula():
    assert reputation(0, 0, 0) == 0.5
    assert reputation(10, 0, 0) == pytest.approx(11 / 12)
    assert reputation(0, 1, 1) == pytest.approx(1 / 3 - 0.25)
    assert reputation(0, 5, 5) == 0.0


def test_access_requests_are_decided_once(make_datanet, make_user):
    datanet = make_datanet(visibility="permissioned")
    asker = make_user("asker")
    req = services.request_access(asker, datanet, "contributor", "I work in this field.")
    with pytest.raises(services.DatanetError, match="already have a pending"):
        services.request_access(asker, datanet)
    with pytest.raises(services.DatanetError):
        services.decide_request(asker, req, True)  # not the owner
    services.decide_request(datanet.owner, req, True)
    assert Membership.objects.get(datanet=datanet, user=asker).role == "contributor"
    with pytest.raises(services.DatanetError, match="already decided"):
        services.decide_request(datanet.owner, req, False)
