"""The admission stage: priority and tenant from headers and the admission settings."""

from __future__ import annotations

import pytest

from bastion.config import AdmissionSettings
from bastion.errors import InvalidRequest
from bastion.routing.admission import Admission


def lookup(**headers: str):  # type: ignore[no-untyped-def]
    raw = {k.replace("_", "-").encode(): v.encode() for k, v in headers.items()}
    return raw.get


def test_no_headers_is_the_default_claim() -> None:
    admission = Admission(AdmissionSettings())
    claim = admission.claim(lookup())
    assert claim is admission.default
    assert (claim.priority, claim.tenant, claim.weight, claim.max_queued) == (5, "", 1.0, None)


def test_tenant_settings_and_asked_priority_are_capped() -> None:
    admission = Admission(AdmissionSettings.model_validate({
        "best_priority": 2,
        "max_queued_per_tenant": 10,
        "tenants": {
            "gold": {"priority": 1, "best_priority": 0, "weight": 4, "max_queued": 50},
            "batch": {"priority": 8},
        },
    }))
    gold = admission.claim(lookup(x_bastion_tenant="gold"))
    assert (gold.priority, gold.weight, gold.max_queued) == (1, 4.0, 50)
    assert admission.claim(lookup(x_bastion_tenant="gold", x_bastion_priority="0")).priority == 0
    assert admission.claim(lookup(x_bastion_tenant="batch")).priority == 8
    # an unlisted tenant may not ask for more urgency than the global best_priority
    other = admission.claim(lookup(x_bastion_tenant="other", x_bastion_priority="0"))
    assert (other.priority, other.max_queued) == (2, 10)
    # asking for less urgency is always allowed
    assert admission.claim(lookup(x_bastion_tenant="gold", x_bastion_priority="9")).priority == 9
    # an authenticated principal's tenant wins over the header
    assert admission.claim(lookup(x_bastion_tenant="gold"), tenant="batch").tenant == "batch"
    assert admission.claim(lookup(x_bastion_tenant="gold")) is admission.claim(
        lookup(x_bastion_tenant="gold")
    ), "claims are cached"


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x_bastion_priority": "high"}, "x-bastion-priority"),
        ({"x_bastion_priority": "10"}, "x-bastion-priority"),
        ({"x_bastion_priority": "-1"}, "x-bastion-priority"),
        ({"x_bastion_tenant": "has space"}, "x-bastion-tenant"),
        ({"x_bastion_tenant": "x" * 129}, "x-bastion-tenant"),
    ],
)
def test_bad_headers_are_a_400_naming_the_header(headers: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        Admission(AdmissionSettings()).claim(lookup(**headers))
    assert info.value.param == param


def test_headers_can_be_renamed_or_ignored() -> None:
    admission = Admission(AdmissionSettings(priority_header=None, tenant_header="X-Team"))
    claim = admission.claim(lookup(x_bastion_priority="0", x_team="ops"))
    assert (claim.priority, claim.tenant) == (5, "ops")
