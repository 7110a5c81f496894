"""The protocol's code tables, named as the data exchange standards name them.

Every value here is the number that travels on the wire. Tags in the comments follow
protocol.md: V (verified in a source), U (assumed), O (our own choice).
"""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema


class Code(IntEnum):
    """A code of the protocol's tables: an ``IntEnum`` that pydantic reads from its whole
    number only, never from a boolean (``true`` would be code 1: Python's ``True == 1``)
    nor from a float (``4.0``), in API bodies and messages alike (found by fuzzing,
    docs/adr/0020)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        def whole_number(value: Any) -> Any:
            if isinstance(value, bool | float):
                raise PydanticCustomError(
                    "enum", "{value} is no {name} code: codes are whole numbers",
                    {"name": cls.__name__, "value": json.dumps(value)})
            return value

        return core_schema.no_info_before_validator_function(whole_number, handler(source))

ITL_CODE = "ITL"
CDM_CODE = "CDM"

#: DES major/minor version plus our payload revision (O, protocol.md 7.3).
SCHEMA_VERSION = "des-1.1/3"

#: Largest number of unit blocks in one transaction (V UK-LIMIT).
MAX_BLOCKS_PER_TRANSACTION = 3000
#: The validation error type of a unit block whose start serial is after its end (2002).
SERIAL_START_AFTER_END_ERROR = "serial_start_after_end"


class UnitType(Code):
    """Kyoto unit types (protocol.md 2.4)."""

    AAU = 1
    RMU = 2
    ERU_FROM_AAU = 3
    ERU_FROM_RMU = 4
    CER = 5
    TCER = 6
    LCER = 7


#: Units only the CDM registry creates (Decree 684 cl. 9).
CDM_UNIT_TYPES = frozenset({UnitType.CER, UnitType.TCER, UnitType.LCER})
#: Units a national registry creates by issuance (Decree 684 cl. 8; ERUs come by conversion).
NATIONAL_ISSUANCE_UNIT_TYPES = frozenset({UnitType.AAU, UnitType.RMU})
#: Units that count towards a Party's assigned amount for the commitment period reserve.
KYOTO_UNIT_TYPES = frozenset(UnitType)


class LulucfActivity(Code):
    """LULUCF activity codes (protocol.md 2.5)."""

    AFFORESTATION_REFORESTATION = 1
    DEFORESTATION = 2
    FOREST_MANAGEMENT = 3
    CROPLAND_MANAGEMENT = 4
    GRAZING_LAND_MANAGEMENT = 5
    REVEGETATION = 6
    WETLAND_DRAINAGE_REWETTING = 7


class CommitmentPeriod(Code):
    """Commitment periods we simulate (protocol.md 2.5: we use 1 and 2)."""

    CP1 = 1
    CP2 = 2


#: First and last year of each commitment period (protocol.md 2.5, V UK-TYPES).
COMMITMENT_PERIOD_YEARS = {1: (2008, 2012), 2: (2013, 2020)}


class TransactionType(Code):
    """Primary transaction types (protocol.md 2.6)."""

    ISSUANCE = 1
    CONVERSION = 2
    EXTERNAL_TRANSFER = 3
    CANCELLATION = 4
    RETIREMENT = 5
    REPLACEMENT = 6
    CARRY_OVER = 7
    EXPIRY_DATE_CHANGE = 8
    INTERNAL_TRANSFER = 10


class SupplementaryType(Code):
    """Supplementary transaction types: the kinds one primary type covers (protocol.md 2.6,
    V UK-TYPES numbers). 0 is the plain kind of each primary type."""

    NONE = 0
    CARRY_OVER_CER_ERU = 38
    CARRY_OVER_AAU = 39
    ARTICLE_37TER_CANCELLATION = 45
    AMBITION_INCREASE_CANCELLATION = 46
    SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU = 47
    MANDATORY_CANCELLATION = 48
    SHARE_OF_PROCEEDS_ERU_CONVERSION = 49


class AccountType(Code):
    """Account type codes (protocol.md 2.7)."""

    PARTY_HOLDING = 100
    PENDING = 110
    FORMER_OPERATOR_HOLDING = 120
    PERSON_HOLDING = 121
    PREVIOUS_PERIOD_SURPLUS_RESERVE = 130
    NET_SOURCE_CANCELLATION = 210
    NON_COMPLIANCE_CANCELLATION = 220
    VOLUNTARY_CANCELLATION = 230
    EXCESS_ISSUANCE_CANCELLATION = 240
    CCS_NET_REVERSAL_CANCELLATION = 241
    CCS_NON_SUBMISSION_CANCELLATION = 242
    MANDATORY_CANCELLATION = 250
    ADMINISTRATIVE_CANCELLATION = 260
    ARTICLE_37TER_CANCELLATION = 270
    AMBITION_INCREASE_CANCELLATION = 280
    RETIREMENT = 300
    TCER_REPLACEMENT_EXPIRY = 411
    LCER_REPLACEMENT_EXPIRY = 421
    LCER_REPLACEMENT_REVERSAL = 422
    LCER_REPLACEMENT_NON_SUBMISSION = 423


#: Accounts whose units have left circulation: they do not count towards the CPR
#: and cannot be transferred out (U protocol.md 4.1 "less cancelled and retired units").
OUT_OF_CIRCULATION_ACCOUNT_TYPES = frozenset(
    t for t in AccountType if 200 <= t.value < 500
)


class TransactionStatus(Code):
    """Transaction status codes on the wire (protocol.md 1.4)."""

    PROPOSED = 1
    CHECKED_NO_DISCREPANCY = 2
    CHECKED_DISCREPANCY = 3
    COMPLETED = 4
    TERMINATED = 5
    REJECTED = 6
    CANCELLED = 7
    ACCEPTED = 8


FINAL_STATUSES = frozenset(
    {
        TransactionStatus.COMPLETED,
        TransactionStatus.TERMINATED,
        TransactionStatus.REJECTED,
        TransactionStatus.CANCELLED,
    }
)


class NoticeType(Code):
    """ITL notice types (protocol.md 2.8)."""

    NET_SOURCE_CANCELLATION = 1
    NON_COMPLIANCE_CANCELLATION = 2
    IMPENDING_EXPIRY = 3
    REVERSAL_OF_STORAGE = 4
    NON_SUBMISSION_OF_CERTIFICATION_REPORT = 5
    EXCESS_ISSUANCE = 6
    COMMITMENT_PERIOD_RESERVE = 7
    UNIT_CARRY_OVER = 8
    EXPIRY_DATE_CHANGE = 9
    NOTIFICATION_UPDATE = 10
    EU15_COMMITMENT_PERIOD_RESERVE = 11
    CCS_NET_REVERSAL_OF_STORAGE = 12
    CCS_NON_SUBMISSION_OF_VERIFICATION_REPORT = 13


class NoticeStatus(Code):
    """ITL notice status (protocol.md 2.8)."""

    OPEN = 1
    INCOMPLETE = 2
    COMPLETED = 3


class ResponseCode(Code):
    """Response codes returned in evaluation results (protocol.md 3.3).

    Only 5902-5906 are verified DES values; every other number is ours (O).
    """

    UNSUPPORTED_VERSION = 1001
    SENDER_MISMATCH = 1002
    MALFORMED_PAYLOAD = 1101
    DUPLICATE_MESSAGE_DIFFERENT_CONTENT = 1102
    OUT_OF_SEQUENCE = 1103
    # a registry did not complete or answer by the deadline the ITL set (docs/adr/0017)
    TRANSACTION_TIMED_OUT = 1104
    TRANSACTION_ID_REUSED = 1105
    REGISTRY_UNKNOWN = 1201
    REGISTRY_SUSPENDED = 1202
    REGISTRY_INCONSISTENT = 1203
    MISSING_FIELD = 2001
    SERIAL_START_AFTER_END = 2002
    UNKNOWN_CODE = 2003
    TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED = 2004
    TOO_MANY_BLOCKS = 2005
    OVERLAPPING_BLOCKS = 2006
    TRANSFERRING_ACCOUNT_BLOCKED = 2007
    TRANSFERRING_ACCOUNT_CLOSED = 2008
    ACCOUNT_NOT_EMPTY = 2009
    # ours (O): an issuance would take serial numbers beyond shared.bounds.MAX_SERIAL
    SERIAL_NUMBERS_EXHAUSTED = 2010
    BLOCK_UNKNOWN = 3001
    BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT = 3002
    BLOCK_RETIRED_OR_CANCELLED = 3003
    BLOCK_IN_ANOTHER_REGISTRY = 3004
    BLOCK_OPEN_DISCREPANCY = 3005
    BLOCK_RESERVED = 3006
    UNIT_EXPIRED = 3007
    UNIT_ALREADY_REPLACED = 3008
    ISSUANCE_OVER_LIMIT = 4001
    CONVERSION_WITHOUT_PROJECT = 4002
    CARRY_OVER_OVER_LIMIT = 4003
    REPLACEMENT_UNIT_TYPE_NOT_ALLOWED = 4004
    NOTICE_UNKNOWN_OR_CLOSED = 4005
    PARTY_NOT_ELIGIBLE = 4006
    SHARE_OF_PROCEEDS_OWED = 4007
    PPSR_ACQUISITION_OVER_LIMIT = 4008
    PPSR_RETIREMENT_OVER_EXCESS_EMISSIONS = 4009
    ARTICLE_37TER_OVER_QUANTITY = 4010
    AR_CDM_LIMIT_EXCEEDED = 4011
    EXPIRY_DATE_CONTRADICTS_RULE = 4012
    UNITS_DO_NOT_MATCH_NOTICE = 4013
    NOTICE_TARGET_EXCEEDED = 4014
    TRUE_UP_PERIOD_NOT_ENDED = 4015
    # 4100-4199 effort sharing, Decision 406/2009/EC Art. 5 (ours, O)
    ESD_UNIT_TYPE_NOT_ELIGIBLE = 4101
    ESD_PROJECT_FACTS_MISSING = 4102
    ESD_NOT_ETS_ELIGIBLE = 4103
    ESD_PROJECT_REGISTERED_TOO_LATE = 4104
    ESD_REDUCTIONS_BEFORE_CREDITING_START = 4105
    ESD_LDC_CREDITS_NOT_ELIGIBLE = 4106
    ESD_TEMPORARY_CREDITS_NOT_ELIGIBLE = 4107
    ESD_TEMPORARY_CREDITS_EXPIRED = 4108
    ESD_REPLACEMENT_OVERDUE = 4109
    ESD_HOST_NOT_RATIFIED = 4110
    ESD_ANNUAL_LIMIT_EXCEEDED = 4111
    ESD_EMISSIONS_NOT_SET = 4112
    ESD_NOT_A_MEMBER_STATE = 4113
    ESD_YEAR_CLOSED = 4114
    ESD_YEAR_OUT_OF_RANGE = 4115
    ESD_TRANSFER_EXCEEDS_UNUSED = 4116
    ESD_YEAR_HAS_OPEN_OPERATIONS = 4117
    ESD_YEAR_NOT_ENDED = 4118
    ESD_TRANSFER_TO_ITSELF = 4119
    ESD_REPLACEMENT_INVALID = 4120
    CPR_VIOLATED = 5001
    ACQUIRING_ACCOUNT_UNKNOWN = 5902
    ACQUIRING_ACCOUNT_NOT_ELIGIBLE = 5903
    INCONSISTENT_WITH_POLICY = 5904
    ACQUIRING_ACCOUNT_CLOSED = 5906
    TOTALS_MISMATCH = 7001
    UNIT_BLOCK_MISMATCH = 7002
    AUDIT_TRAIL_MISMATCH = 7003
    # ours (O): a reconciliation message names a reconciliation id its receiver never
    # assigned or took part in (protocol.md 2.2: the ITL assigns the id)
    RECONCILIATION_UNKNOWN = 7004


RESPONSE_TEXT: dict[ResponseCode, str] = {
    ResponseCode.UNSUPPORTED_VERSION: "unsupported message version",
    ResponseCode.SENDER_MISMATCH: "sender is not the registry the message speaks for",
    ResponseCode.MALFORMED_PAYLOAD: "malformed payload",
    ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT: "duplicate message id with other content",
    ResponseCode.OUT_OF_SEQUENCE: "status message out of sequence",
    ResponseCode.TRANSACTION_TIMED_OUT: "not completed or answered by its deadline (time-out)",
    ResponseCode.TRANSACTION_ID_REUSED: "transaction id already used for another proposal",
    ResponseCode.REGISTRY_UNKNOWN: "registry unknown to the ITL",
    ResponseCode.REGISTRY_SUSPENDED: "registry suspended",
    ResponseCode.REGISTRY_INCONSISTENT: "registry blocked by reconciliation",
    ResponseCode.MISSING_FIELD: "mandatory field missing",
    ResponseCode.SERIAL_START_AFTER_END: "unit block start serial is after its end serial",
    ResponseCode.UNKNOWN_CODE: "unknown unit, account or transaction type",
    ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED: (
        "transaction type not allowed for these accounts or units"
    ),
    ResponseCode.TOO_MANY_BLOCKS: "more than 3000 unit blocks in one transaction",
    ResponseCode.OVERLAPPING_BLOCKS: "unit blocks of one transaction overlap",
    ResponseCode.TRANSFERRING_ACCOUNT_BLOCKED: "transferring account blocked",
    ResponseCode.TRANSFERRING_ACCOUNT_CLOSED: "transferring account closed",
    ResponseCode.ACCOUNT_NOT_EMPTY: "account still holds units or has open transactions",
    ResponseCode.SERIAL_NUMBERS_EXHAUSTED: "the issuing registry has no serial numbers left",
    ResponseCode.BLOCK_UNKNOWN: "unit block unknown to the ITL",
    ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT: (
        "unit block not held by the transferring account"
    ),
    ResponseCode.BLOCK_RETIRED_OR_CANCELLED: "unit block already retired or cancelled",
    ResponseCode.BLOCK_IN_ANOTHER_REGISTRY: "unit serials already exist",
    ResponseCode.BLOCK_OPEN_DISCREPANCY: "unit block has an open discrepancy",
    ResponseCode.BLOCK_RESERVED: "unit block reserved by another open transaction",
    ResponseCode.UNIT_EXPIRED: "tCER or lCER expired",
    ResponseCode.UNIT_ALREADY_REPLACED: "tCER or lCER already replaced",
    ResponseCode.ISSUANCE_OVER_LIMIT: "issuance exceeds the Party's limit",
    ResponseCode.CONVERSION_WITHOUT_PROJECT: "conversion without an approved JI project",
    ResponseCode.CARRY_OVER_OVER_LIMIT: "carry-over exceeds its limit",
    ResponseCode.REPLACEMENT_UNIT_TYPE_NOT_ALLOWED: "unit type not allowed for replacement",
    ResponseCode.NOTICE_UNKNOWN_OR_CLOSED: "notice unknown or closed",
    ResponseCode.PARTY_NOT_ELIGIBLE: "Party not eligible",
    ResponseCode.SHARE_OF_PROCEEDS_OWED: (
        "share of proceeds not transferred to the Adaptation Fund (1/CMP.8 para 21)"
    ),
    ResponseCode.PPSR_ACQUISITION_OVER_LIMIT: (
        "previous period surplus reserve acquisitions over 2 % of the first-period "
        "assigned amount (1/CMP.8 para 26)"
    ),
    ResponseCode.PPSR_RETIREMENT_OVER_EXCESS_EMISSIONS: (
        "retirement from the previous period surplus reserve over the Party's excess "
        "emissions (1/CMP.8 para 25)"
    ),
    ResponseCode.ARTICLE_37TER_OVER_QUANTITY: "Art. 3.7ter cancellation over its quantity",
    ResponseCode.AR_CDM_LIMIT_EXCEEDED: (
        "A/R CDM credits over 1 % of base-year emissions times the period's years "
        "(16/CMP.1 annex para 14)"
    ),
    ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE: (
        "tCER/lCER expiry date contradicts decision 5/CMP.1"
    ),
    ResponseCode.UNITS_DO_NOT_MATCH_NOTICE: "units do not match the notice",
    ResponseCode.NOTICE_TARGET_EXCEEDED: "quantity over the notice's target",
    ResponseCode.TRUE_UP_PERIOD_NOT_ENDED: (
        "the additional period for fulfilling commitments has not ended"
    ),
    ResponseCode.ESD_UNIT_TYPE_NOT_ELIGIBLE: "unit type is not a project credit (ESD Art. 5(1))",
    ResponseCode.ESD_PROJECT_FACTS_MISSING: "no effort-sharing facts recorded for the project",
    ResponseCode.ESD_NOT_ETS_ELIGIBLE: (
        "project credits not eligible in the EU ETS 2008-2012 (ESD Art. 5(1)(a)-(c))"
    ),
    ResponseCode.ESD_PROJECT_REGISTERED_TOO_LATE: (
        "reductions from 2013 of a project registered after 2012 outside an LDC "
        "(ESD Art. 5(1)(b)-(c))"
    ),
    ResponseCode.ESD_REDUCTIONS_BEFORE_CREDITING_START: (
        "reductions dated before the project's crediting start (ESD Art. 5(1)(a))"
    ),
    ResponseCode.ESD_LDC_CREDITS_NOT_ELIGIBLE: (
        "LDC credits no longer eligible: agreement ratified or after 2020 (ESD Art. 5(1)(c))"
    ),
    ResponseCode.ESD_TEMPORARY_CREDITS_NOT_ELIGIBLE: (
        "tCERs/lCERs not used by the Member State in 2008-2012 (ESD Art. 5(1)(d))"
    ),
    ResponseCode.ESD_TEMPORARY_CREDITS_EXPIRED: "tCER or lCER expired (ESD Art. 5(1)(d))",
    ResponseCode.ESD_REPLACEMENT_OVERDUE: (
        "tCERs/lCERs used earlier expired without replacement (ESD Art. 5(1)(d))"
    ),
    ResponseCode.ESD_HOST_NOT_RATIFIED: (
        "host country has not ratified the international agreement (ESD Art. 5(3))"
    ),
    ResponseCode.ESD_ANNUAL_LIMIT_EXCEEDED: (
        "annual limit on the use of credits exceeded (ESD Art. 5(4)-(5))"
    ),
    ResponseCode.ESD_EMISSIONS_NOT_SET: "2005 effort-sharing emissions not configured",
    ResponseCode.ESD_NOT_A_MEMBER_STATE: "registry is not configured as an EU Member State",
    ResponseCode.ESD_YEAR_CLOSED: "effort-sharing year closed",
    ResponseCode.ESD_YEAR_OUT_OF_RANGE: "year outside the effort-sharing years 2013-2020",
    ResponseCode.ESD_TRANSFER_EXCEEDS_UNUSED: (
        "transfer exceeds the unused part of the annual 3 % (ESD Art. 5(6))"
    ),
    ResponseCode.ESD_YEAR_HAS_OPEN_OPERATIONS: "effort-sharing year has open operations",
    ResponseCode.ESD_YEAR_NOT_ENDED: "effort-sharing year has not ended",
    ResponseCode.ESD_TRANSFER_TO_ITSELF: "allowance transfer to the transferring state itself",
    ResponseCode.ESD_REPLACEMENT_INVALID: "replacement of temporary credits not possible",
    ResponseCode.CPR_VIOLATED: "transfer would breach the commitment period reserve",
    ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN: "acquiring account does not exist",
    ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE: (
        "acquiring account not eligible to receive the units"
    ),
    ResponseCode.INCONSISTENT_WITH_POLICY: "transaction inconsistent with the Party's policy",
    ResponseCode.ACQUIRING_ACCOUNT_CLOSED: "acquiring account closed",
    ResponseCode.TOTALS_MISMATCH: "totals mismatch",
    ResponseCode.UNIT_BLOCK_MISMATCH: "unit block mismatch",
    ResponseCode.AUDIT_TRAIL_MISMATCH: "audit trail mismatch",
    ResponseCode.RECONCILIATION_UNKNOWN: "reconciliation id unknown to the receiver",
}


class MessageType(StrEnum):
    """Our message type names for the DES operations (protocol.md 7.4)."""

    PROPOSAL_SUBMITTED = "ProposalSubmitted"
    PROPOSAL_FORWARDED = "ProposalForwarded"
    MESSAGE_ACK = "MessageAck"
    TRANSACTION_STATUS_NOTIFIED = "TransactionStatusNotified"
    TRANSACTION_STATUS_QUERIED = "TransactionStatusQueried"
    TRANSACTION_STATUS_REPORTED = "TransactionStatusReported"
    # effort sharing (ESD Art. 5(6)): registry -> ITL -> registry and back (ours, O)
    ALLOWANCE_TRANSFER_SUBMITTED = "AllowanceTransferSubmitted"
    ALLOWANCE_TRANSFER_FORWARDED = "AllowanceTransferForwarded"
    ALLOWANCE_TRANSFER_ANSWERED = "AllowanceTransferAnswered"
    ALLOWANCE_TRANSFER_NOTIFIED = "AllowanceTransferNotified"
    NOTICE_ISSUED = "NoticeIssued"
    # the ITL to itself, through its own inbox: a time-out has come (ours, O; ADR 0017)
    TIME_OUT_DUE = "TimeOutDue"
    # reconciliation (protocol.md 5, 7.4): ITL -> registry and back
    RECONCILIATION_INITIATED = "ReconciliationInitiated"
    TOTALS_REQUESTED = "TotalsRequested"
    TOTALS_REPORTED = "TotalsReported"
    UNIT_BLOCKS_REQUESTED = "UnitBlocksRequested"
    UNIT_BLOCKS_REPORTED = "UnitBlocksReported"
    AUDIT_TRAIL_REQUESTED = "AuditTrailRequested"
    AUDIT_TRAIL_REPORTED = "AuditTrailReported"
    RECONCILIATION_RESULT_NOTIFIED = "ReconciliationResultNotified"


class ReconciliationStatus(Code):
    """Reconciliation status codes (protocol.md 5, V UK-RECON)."""

    CONFIRMED = 0
    INITIATED = 1
    VALIDATED = 2
    TOTALS_INCONSISTENT = 3
    UNIT_BLOCKS_INCONSISTENT = 4
    COMPLETED = 5
    COMPLETED_WITH_MANUAL_INTERVENTION = 6
    START_DENIED = 7


class ReconciliationPhase(Code):
    """Reconciliation phase codes (protocol.md 5, V UK-RECON)."""

    TOTALS = 1
    UNIT_BLOCKS = 2
    AUDIT_TRAIL = 3
