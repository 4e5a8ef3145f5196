from __future__ import annotations

import pytest

from accounts.services import create_api_key
from tests.factories import succeeded_job


@pytest.fixture
def model_setup(user, serving_base, make_adapters):
    (adapter,) = make_adapters(1)
    job = succeeded_job(user, "Glossary tutor", serving_base, adapter)
    _, key = create_api_key(user, "tests")
    return job, key
