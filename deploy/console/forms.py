"""The operations the console starts, as forms: each field is a field of the registry's
request body (``POST /transactions/{operation}`` or ``POST /decisions``,
services/registry/operations_api.py), so that the API's errors, which name the body's
fields, land next to the form's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from services.registry.decisions import DecisionKind, WithdrawalGround
from shared.codes import UnitType

UNIT_TYPES = tuple(unit.name for unit in UnitType)
INTEGER = re.compile(r"^-?\d{1,30}$")


@dataclass(frozen=True)
class FormField:
    """One input: ``name`` (the request field), ``label``, ``kind`` (``int``, ``text``,
    ``select`` of ``options``), ``default`` and a ``hint``."""

    name: str
    label: str
    kind: str = "int"
    default: str = ""
    options: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class OperationForm:
    """An operation: ``operation`` names it in the console's URLs, ``path`` is the
    registry's endpoint it posts to (``/transactions/<operation>`` unless given),
    ``rule`` where the Rules and the Decree set it."""

    operation: str
    title: str
    rule: str
    fields: tuple[FormField, ...]
    path: str = ""

    @property
    def endpoint(self) -> str:
        return self.path or f"/transactions/{self.operation}"


TRANSFERRING = FormField("transferring_account_id", "Transferring account", default="1",
                         hint="account id; 1 is the Party holding account")
UNIT_TYPE = FormField("unit_type", "Unit type", "select", "AAU", UNIT_TYPES)
QUANTITY = FormField("quantity", "Quantity", hint="units, 1 to 10^12")
PERIOD = FormField("commitment_period", "Commitment period", "select", "2", ("1", "2"),
                   "the units' applicable period")
ACQUIRING = FormField("acquiring_account_id", "Acquiring account",
                      hint="account id at the acquiring registry")
ACQUIRING_TYPE = FormField("acquiring_account_type", "Acquiring account type", default="121",
                           hint="121 person holding, 100 Party holding, ...")
REFERENCE = FormField("reference", "Reference", "text", hint="optional, up to 200 characters")

OPERATIONS: tuple[OperationForm, ...] = (
    OperationForm("decision", "Decision of the authorised body",
                  "Decree 684 cl. 10-29 (the authorised body records it)",
                  (FormField("kind", "Kind", "select", "issuance",
                             tuple(kind.value for kind in DecisionKind)),
                   FormField("reference", "Reference", "text",
                             hint="the authorised body's own number, e.g. MEP order 2013-117"),
                   UNIT_TYPE,
                   FormField("quantity", "Quantity", hint="units"),
                   FormField("account_id", "Account", default="1",
                             hint="the account the units come from (issuance: into)"),
                   PERIOD,
                   FormField("ground", "Withdrawal ground", "select", "",
                             ("", *(ground.value for ground in WithdrawalGround)),
                             "withdrawal only (cl. 22)"),
                   FormField("notice_id", "ITL notice",
                             hint="withdrawal: notice 1, 2; replacement: 3, 4, 5"),
                   FormField("cancellation_account_type", "Cancellation account type",
                             hint="cancellation: optional")),
                  path="/decisions"),
    OperationForm("issuance", "Issuance",
                  "Decree 684 cl. 3(1), 10, 14; protocol.md 2.6 type 1",
                  (FormField("decision_id", "Issuance decision", "text",
                             hint="the authorised body's decision (D1)"),
                   FormField("quantity", "Quantity",
                             hint="optional: by default what the decision leaves"),
                   FormField("acquiring_account_id", "Account", default="1",
                             hint="Party holding account"))),
    OperationForm("internal-transfer", "Internal transfer",
                  "Decree 684 cl. 3(4), 21; protocol.md 2.6 type 10",
                  (TRANSFERRING, ACQUIRING, ACQUIRING_TYPE, UNIT_TYPE, QUANTITY, PERIOD,
                   REFERENCE)),
    OperationForm("external-transfer", "External transfer",
                  "Decree 684 cl. 3(3), 16-18; protocol.md 2.6 type 3",
                  (TRANSFERRING,
                   FormField("acquiring_registry", "Acquiring registry", "text",
                             hint="the other registry's code: CH, JP, CDM"),
                   ACQUIRING, ACQUIRING_TYPE, UNIT_TYPE, QUANTITY, PERIOD,
                   FormField("decision_id", "Decision", "text",
                             hint="ERUs: the external transfer decision (D7)"),
                   REFERENCE)),
    OperationForm("retirement", "Retirement",
                  "Decree 684 cl. 27-29; protocol.md 2.6 type 5",
                  (FormField("decision_id", "Retirement decision", "text",
                             hint="it names the units, account and period"),
                   FormField("quantity", "Quantity",
                             hint="optional: by default what the decision leaves"))),
    OperationForm("cancellation", "Cancellation",
                  "Decree 684 cl. 22, 27-29; protocol.md 2.6 type 4",
                  (TRANSFERRING, UNIT_TYPE, QUANTITY, PERIOD,
                   FormField("account_type", "Cancellation account type", default="230",
                             hint="230 voluntary, 270 Art. 3.7ter, 280 ambition increase, "
                                  "2xx withdrawals"),
                   FormField("decision_id", "Cancellation decision", "text",
                             hint="a decision taken after the end of the period"),
                   FormField("notice_id", "ITL notice", hint="a withdrawal on notice 1 or 2"))),
)
BY_OPERATION = {form.operation: form for form in OPERATIONS}


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as its fields (the last value of a
    repeated name); UTF-8, bad bytes replaced."""
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def request_body(form: OperationForm, values: dict[str, str]) -> dict[str, Any]:
    """The JSON body of ``form`` filled with ``values``: blank fields left out (the API
    then uses its default or names the field as required), integers of ``int`` fields as
    numbers, anything else as the text typed (the API names the field it cannot take)."""
    body: dict[str, Any] = {}
    for item in form.fields:
        value = values.get(item.name, "").strip()
        if not value:
            continue
        if item.kind == "int" or (item.kind == "select" and INTEGER.match(value)):
            body[item.name] = int(value) if INTEGER.match(value) else value
        else:
            body[item.name] = value
    return body
