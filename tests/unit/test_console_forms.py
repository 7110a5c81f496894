"""The console's own rules (deploy/console, docs/adr/0041): a form's values become the
registry's request body as typed, a 422 lands on the fields it names, registry totals
are summed per unit type and period, and sign-in never sends the browser to another
site."""

from __future__ import annotations

import asyncio

import pytest

from deploy.console.app import holdings_by_type, safe_next
from deploy.console.backend import Answer, Backend, SignInRefused
from deploy.console.forms import (
    BY_OPERATION,
    PARTY_PERIOD,
    FieldError,
    pairs_text,
    parse_form,
    parse_pairs,
    request_body,
)


def test_a_form_becomes_the_request_body_numbers_as_numbers_blanks_left_out() -> None:
    values = parse_form(b"transferring_account_id=1&acquiring_registry=CH"
                        b"&acquiring_account_id=1001&acquiring_account_type=121"
                        b"&unit_type=AAU&quantity=+500+&commitment_period=2&decision_id="
                        b"&reference=sale%20%C3%A0%20Zurich")
    body = request_body(BY_OPERATION["external-transfer"], values)
    assert body == {"transferring_account_id": 1, "acquiring_registry": "CH",
                    "acquiring_account_id": 1001, "acquiring_account_type": 121,
                    "unit_type": "AAU", "quantity": 500, "commitment_period": 2,
                    "reference": "sale à Zurich"}


def test_what_is_no_integer_goes_as_typed_for_the_api_to_name() -> None:
    body = request_body(BY_OPERATION["internal-transfer"],
                        {"transferring_account_id": "one", "quantity": "1.5"})
    assert body["transferring_account_id"] == "one" and body["quantity"] == "1.5"
    assert "acquiring_account_id" not in body  # blank: the API says it is required


def test_a_422_lands_on_the_fields_it_names() -> None:
    answer = Answer(422, {"detail": [
        {"loc": ["body", "quantity"], "msg": "Input should be greater than or equal to 1"},
        {"loc": ["body", "transferring_account_id"], "msg": "Field required"},
        {"loc": ["header", "Idempotency-Key"], "msg": "too long"}]}, "")
    assert answer.field_errors() == {
        "quantity": "Input should be greater than or equal to 1",
        "transferring_account_id": "Field required", "Idempotency-Key": "too long"}
    assert "quantity: Input should be" in answer.error


def test_a_refusal_shows_its_reason_and_response_code() -> None:
    answer = Answer(422, {"detail": "acquiring account does not exist: CH-121-9",
                          "response_code": 5902}, "")
    assert answer.field_errors() == {}
    assert answer.error == ("422: acquiring account does not exist: CH-121-9 "
                            "(response code 5902)")
    assert Answer(200, {}, "").error == ""


def test_a_404_lands_on_the_field_that_gave_the_id_not_found() -> None:
    """A form naming a decision, notice or account that does not exist: the registry's
    404 names it by its id, and the error goes next to the field that gave that id."""
    issuance = {"decision_id": " D999 ", "quantity": "", "acquiring_account_id": "1"}
    answer = Answer(404, {"detail": "decision D999 not found"}, "")
    assert answer.field_errors(issuance) == {"decision_id": "decision D999 not found"}
    transfer = {"transferring_account_id": "5000", "acquiring_account_id": "1003",
                "quantity": "5000", "decision_id": ""}
    missing = Answer(404, {"detail": "account 5000 in registry KZ not found"}, "")
    assert missing.field_errors(transfer) == {
        "transferring_account_id": "account 5000 in registry KZ not found"}
    # an id that only begins like the one given, another thing, or no form: nothing
    assert Answer(404, {"detail": "account 50001 in registry KZ not found"}, "") \
        .field_errors(transfer) == {}
    assert Answer(404, {"detail": "notice 5000 not found"}, "").field_errors(transfer) == {}
    assert answer.field_errors() == {}
    assert Answer(422, {"detail": "decision D999 not found"}, "").field_errors(issuance) == {}


def test_holdings_are_summed_per_unit_type_and_period() -> None:
    rows = [{"account_id": 1, "account_type": 100, "unit_type": "AAU",
             "applicable_commitment_period": 2, "units": 900, "blocks": 2},
            {"account_id": 1001, "account_type": 121, "unit_type": "AAU",
             "applicable_commitment_period": 2, "units": 100, "blocks": 1},
            {"account_id": 1001, "account_type": 121, "unit_type": "CER",
             "applicable_commitment_period": 1, "units": 7, "blocks": 1}]
    assert holdings_by_type(rows) == [
        {"unit_type": "AAU", "period": 2, "units": 1000, "blocks": 3, "accounts": 2},
        {"unit_type": "CER", "period": 1, "units": 7, "blocks": 1, "accounts": 1}]


def test_after_signing_in_the_browser_stays_on_this_site() -> None:
    assert safe_next("/registries/KZ?x=1") == "/registries/KZ?x=1"
    for elsewhere in ("https://example.org/", "//example.org/", "", None, "registries"):
        assert safe_next(elsewhere) == "/"


@pytest.mark.parametrize(("kind", "username", "password", "blamed"), [
    ("robot", "kz-operator-1", "secret", "kind"),
    ("", "kz-operator-1", "secret", "kind"),
    ("person", "", "secret", "username"),
    ("client", "stack-clock", "", "password"),
])
def test_signing_in_with_what_is_missing_or_unknown_names_the_field(
        kind: str, username: str, password: str, blamed: str) -> None:
    """Refused before the issuer is asked (nothing listens at its address here)."""
    backend = Backend({}, "http://127.0.0.1:9/token", "stack", lambda: "s", 1.0)

    async def sign_in() -> None:
        try:
            await backend.sign_in(username, password, kind)
        finally:
            await backend.close()

    with pytest.raises(SignInRefused) as refused:
        asyncio.run(sign_in())
    assert refused.value.field == blamed


def test_a_partys_period_form_sends_removals_as_an_object_and_names_a_bad_pair() -> None:
    values = {"assigned_amount": "1000", "reviewed_inventory": " ",
              "rmu_net_removals": "forest_management=20000; 4=15"}
    assert request_body(PARTY_PERIOD, values) == {
        "assigned_amount": 1000, "rmu_net_removals": {"FOREST_MANAGEMENT": 20000, "4": 15}}
    with pytest.raises(FieldError) as refused:
        request_body(PARTY_PERIOD, {**values, "rmu_net_removals": "FOREST_MANAGEMENT"})
    assert refused.value.field == "rmu_net_removals"
    assert "ACTIVITY=UNITS" in refused.value.message
    # the ITL's record, by activity code, back into the form by name
    assert pairs_text({"3": 20000, "4": 15}) == "FOREST_MANAGEMENT=20000, CROPLAND_MANAGEMENT=15"
    assert parse_pairs(pairs_text({"3": 20000})) == {"FOREST_MANAGEMENT": 20000}
