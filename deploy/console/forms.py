"""The operations the console starts, as forms: each field is a field of the registry's
request body (``POST /transactions/{operation}`` or ``POST /decisions``,
services/registry/operations_api.py) or of the ITL's (``PUT /parties/{code}/periods/{cp}``,
services/itl/api.py), so that the API's errors, which name the body's fields, land next
to the form's. The operator CLI (deploy/cli/operations.py) builds the same bodies from
the same fields."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from services.registry.decisions import DecisionKind, WithdrawalGround
from shared.codes import LulucfActivity, UnitType

UNIT_TYPES = tuple(unit.name for unit in UnitType)
INTEGER = re.compile(r"^-?\d{1,30}$")


class FieldError(ValueError):
    """A form value that cannot go into the request body: ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FormField:
    """One input: ``name`` (the request field), ``label``, ``kind`` (``int``, ``text``,
    ``select`` of ``options``, ``pairs`` of ``NAME=VALUE``), ``default`` and a
    ``hint``."""

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
                   FormField("project_id", "JI project", "text",
                             hint="conversion only: the project"),
                   FormField("lulucf_activity", "LULUCF activity", "select", "",
                             ("", *(activity.name for activity in LulucfActivity)),
                             "RMU issuance only"),
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

#: The period a Party's record is for: a part of the ITL's path, chosen in the form.
RECORD_PERIOD = FormField("commitment_period", "Commitment period", "select", "2", ("1", "2"),
                          "the period the record is for")
#: A Party's record for a commitment period at the ITL (``PUT /parties/{code}/periods/{cp}``,
#: the ITL administrator's): the request replaces the whole record, so a field left blank
#: is recorded as unknown. ``rmu_net_removals`` is typed as ``ACTIVITY=UNITS, ...``.
PARTY_PERIOD = OperationForm(
    "party-period", "Record the Party's period",
    "1/CMP.8 paras 2-6, 13-15, 23-24; Decision 11/CMP.1 (the reserve)",
    (FormField("assigned_amount", "Assigned amount", hint="units, required"),
     FormField("reviewed_inventory", "Reviewed inventory",
               hint="t CO2 eq per year; the reserve is 5 (CP1) or 8 (CP2) times it"),
     FormField("average_emissions_2008_2010", "Average emissions 2008-2010",
               hint="second period: t CO2 eq per year (Art. 3.7ter)"),
     FormField("base_year_emissions", "Base-year emissions", hint="t CO2 eq per year"),
     FormField("period_emissions", "Period emissions",
               hint="reviewed total over the period, t CO2 eq"),
     FormField("rmu_net_removals", "RMU net removals", "pairs",
               hint="ACTIVITY=UNITS, ... e.g. FOREST_MANAGEMENT=20000"),
     FormField("forest_management_cap", "Forest management cap",
               hint="units; the second period's is computed when blank")),
    path="/parties/{code}/periods/{cp}")


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as its fields (the last value of a
    repeated name); UTF-8, bad bytes replaced."""
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def parse_pairs(text: str) -> dict[str, Any]:
    """``FOREST_MANAGEMENT=20000, 3=500`` as ``{"FOREST_MANAGEMENT": 20000, "3": 500}``
    (names or codes as typed, for the API to check; whole numbers as numbers); ''
    is ``{}``. ``ValueError`` for a part that is not ``NAME=VALUE``."""
    pairs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,;\n]", text))):
        name, sign, value = part.partition("=")
        if not sign or not name.strip() or not value.strip():
            raise ValueError(f"{part!r} is not ACTIVITY=UNITS (e.g. FOREST_MANAGEMENT=20000)")
        value = value.strip()
        pairs[name.strip().upper()] = int(value) if INTEGER.match(value) else value
    return pairs


def pairs_text(pairs: dict[str, Any] | None) -> str:
    """The ITL's ``rmu_net_removals`` (``{"3": 20000}``, by activity code) as
    ``FOREST_MANAGEMENT=20000`` (``parse_pairs``'s input; a code that is no LULUCF
    activity as it is)."""
    def name(key: str) -> str:
        try:
            return LulucfActivity(int(key)).name
        except ValueError:
            return key
    return ", ".join(f"{name(key)}={value}" for key, value in (pairs or {}).items())


def request_body(form: OperationForm, values: dict[str, str]) -> dict[str, Any]:
    """The JSON body of ``form`` filled with ``values``: blank fields left out (the API
    then uses its default or names the field as required), integers of ``int`` fields as
    numbers, ``pairs`` fields as an object (``parse_pairs``: ``ValueError`` naming the
    field when one is malformed), anything else as the text typed (the API names the
    field it cannot take)."""
    body: dict[str, Any] = {}
    for item in form.fields:
        value = values.get(item.name, "").strip()
        if not value:
            continue
        if item.kind == "pairs":
            try:
                body[item.name] = parse_pairs(value)
            except ValueError as exc:
                raise FieldError(item.name, str(exc)) from None
        elif item.kind == "int" or (item.kind == "select" and INTEGER.match(value)):
            body[item.name] = int(value) if INTEGER.match(value) else value
        else:
            body[item.name] = value
    return body
