"""What an ITL notice asks of the registry (protocol.md 2.8). Pure Python."""

from __future__ import annotations

from shared.codes import NoticeType

N = NoticeType

#: Required action, shown to the operator next to the notice's deadline.
REQUIRED_ACTION: dict[NoticeType, str] = {
    N.NET_SOURCE_CANCELLATION:
        "cancel the target quantity into the net source cancellation account (210)",
    N.NON_COMPLIANCE_CANCELLATION:
        "cancel the target quantity into the non-compliance cancellation account (220)",
    N.IMPENDING_EXPIRY:
        "replace the listed tCER/lCER blocks before they expire (411 / 421)",
    N.REVERSAL_OF_STORAGE: "replace the affected lCERs (422)",
    N.NON_SUBMISSION_OF_CERTIFICATION_REPORT: "replace the affected lCERs (423)",
    N.EXCESS_ISSUANCE:
        "transfer the target quantity to the CDM excess issuance account (CDM 240)",
    N.COMMITMENT_PERIOD_RESERVE: "none: informs of the commitment period reserve",
    N.UNIT_CARRY_OVER: "carry over the units named, within the limits",
    N.EXPIRY_DATE_CHANGE: "change the expiry date of the listed tCERs/lCERs",
    N.NOTIFICATION_UPDATE: "none: amends an earlier notice",
    N.EU15_COMMITMENT_PERIOD_RESERVE: "none: EU bubble only",
    N.CCS_NET_REVERSAL_OF_STORAGE: "transfer the target quantity to CDM 241",
    N.CCS_NON_SUBMISSION_OF_VERIFICATION_REPORT: "transfer the target quantity to CDM 242",
}
