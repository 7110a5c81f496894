"""The small registry's books: a few accounts and the unit blocks they hold, in memory,
and the pure rules it applies to them (no I/O, no broker).

A block is a dict of the wire's ``UnitBlockWire`` fields (``serial_start``,
``serial_end``, ``originating_registry``, ``unit_type``, ``original_commitment_period``,
``applicable_commitment_period``, ``lulucf_activity``, ``project_id``, ``track``,
``expiry_date``) plus ``account_id``, ``account_type`` and ``reserved_by`` (the
transaction that reserved it, or None).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]

#: The wire's fields of a unit block (UnitBlockWire in the JSON Schemas).
WIRE_FIELDS = ("serial_start", "serial_end", "originating_registry", "unit_type",
               "original_commitment_period", "applicable_commitment_period",
               "lulucf_activity", "project_id", "track", "expiry_date")
#: Acquiring registry answers (protocol.md 3.3, V UK-CHK).
ACCOUNT_DOES_NOT_EXIST = 5902
ACCOUNT_NOT_ELIGIBLE = 5903
ACCOUNT_CLOSED = 5906
#: Statuses (protocol.md 1.4).
ACCEPTED, REJECTED, COMPLETED, TERMINATED = 8, 6, 4, 5
FINAL = {4, 5, 6, 7}


@dataclass
class Account:
    account_id: int
    account_type: int = 121
    closed: bool = False


#: The accounts the registry opens at start: a person holding account that takes units
#: (1001), a closed one (1002), its Party holding account (100) and its non-compliance
#: cancellation account (220).
DEFAULT_ACCOUNTS = (Account(100, 100), Account(1001), Account(1002, closed=True),
                    Account(220, 220))


@dataclass
class Books:
    """Accounts, blocks, the transactions the registry proposed (``outbound``) and those
    forwarded to it (``inbound``), notices, status reports and reconciliation snapshots."""

    code: str
    accounts: dict[int, Account] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    outbound: dict[str, dict[str, Any]] = field(default_factory=dict)
    inbound: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: dict[int, dict[str, Any]] = field(default_factory=dict)
    status_reports: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Planted faults (``unknown-account``: accept a transfer to an account it does
    #: not have and open the account on the credit).
    faults: frozenset[str] = frozenset()
    next_transaction: int = 1

    def __post_init__(self) -> None:
        for account in DEFAULT_ACCOUNTS:
            self.accounts.setdefault(account.account_id, Account(
                account.account_id, account.account_type, account.closed))

    # an external transfer forwarded to this registry (acquiring side)

    def answer_forwarded(self, proposal: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Accept (8) or reject (6 with the acquiring registry's codes) a forwarded
        proposal; keeps it as inbound until the ITL's completion (4) credits it."""
        acquiring = proposal["acquiring"]
        account = self.accounts.get(int(acquiring["account_id"]))
        code, text = None, ""
        if account is None and "unknown-account" not in self.faults:
            code, text = ACCOUNT_DOES_NOT_EXIST, f"account {acquiring['account_id']} does not exist"
        elif account is not None and account.closed:
            code, text = ACCOUNT_CLOSED, f"account {account.account_id} is closed"
        elif account is not None and account.account_type != int(acquiring["account_type"]):
            code, text = ACCOUNT_NOT_ELIGIBLE, (f"account {account.account_id} is of type "
                                                f"{account.account_type}")
        status = ACCEPTED if code is None else REJECTED
        self.inbound[proposal["transaction_id"]] = {"proposal": proposal, "status": status}
        results = [] if code is None else [{"response_code": code, "message": text}]
        return status, results

    def inbound_status(self, transaction_id: str, status: int) -> None:
        """The ITL's final word on a forwarded transfer: 4 credits its blocks."""
        record = self.inbound.get(transaction_id)
        if record is None or record["status"] in FINAL:
            return
        record["status"] = status
        if status != COMPLETED:
            return
        acquiring = record["proposal"]["acquiring"]
        number = int(acquiring["account_id"])
        self.accounts.setdefault(number, Account(number, int(acquiring["account_type"])))
        for block in record["proposal"]["blocks"]:
            self.blocks.append({**{f: block.get(f) for f in WIRE_FIELDS},
                                "account_id": number,
                                "account_type": int(acquiring["account_type"]),
                                "reserved_by": None})

    # a transfer this registry proposes (transferring side)

    def propose_transfer(self, account_id: int, quantity: int, unit_type: int, period: int,
                         acquiring: dict[str, Any], transaction_type: int = 3,
                         notification_id: int | None = None) -> dict[str, Any]:
        """Reserve ``quantity`` units of the account and make the ``ProposalSubmitted``
        payload of an external transfer (type 3), or of a cancellation (type 4) into an
        account of this registry, quoting a notice when it fulfils one. ``ValueError``
        when it holds too few."""
        account = self.accounts[account_id]
        free = [b for b in self.blocks if b["account_id"] == account_id
                and b["reserved_by"] is None and b["unit_type"] == unit_type
                and b["applicable_commitment_period"] == period]
        if sum(b["serial_end"] - b["serial_start"] + 1 for b in free) < quantity:
            raise ValueError(f"account {account_id} holds fewer than {quantity} units")
        transaction_id = f"{self.code}{self.next_transaction}"
        self.next_transaction += 1
        taken: list[Block] = []
        wanted = quantity
        for block in sorted(free, key=lambda b: (b["originating_registry"], b["serial_start"])):
            if wanted == 0:
                break
            size = block["serial_end"] - block["serial_start"] + 1
            if size > wanted:  # split: the rest stays free
                rest = {**block, "serial_start": block["serial_start"] + wanted}
                self.blocks.append(rest)
                block["serial_end"] = block["serial_start"] + wanted - 1
                size = wanted
            block["reserved_by"] = transaction_id
            taken.append(block)
            wanted -= size
        payload: dict[str, Any] = {
            "transaction_id": transaction_id, "transaction_type": transaction_type,
            "transferring": {"registry": self.code, "account_type": account.account_type,
                             "account_id": account_id},
            "acquiring": acquiring,
            "blocks": [{f: b.get(f) for f in WIRE_FIELDS} for b in taken],
        }
        if notification_id is not None:
            payload["notification_id"] = notification_id
        self.outbound[transaction_id] = {"proposal": payload, "status": 1}
        return payload

    def outbound_status(self, transaction_id: str, status: int) -> bool:
        """The ITL's answer to a proposal of this registry; True when the registry must
        report completion (4): an external transfer accepted (8) debits the reserved
        units, a transaction within the registry checked (2) moves them to its acquiring
        account."""
        record = self.outbound.get(transaction_id)
        if record is None or record["status"] in FINAL:
            return False
        external = record["proposal"]["transaction_type"] == 3
        if status == (ACCEPTED if external else 2):
            acquiring = record["proposal"]["acquiring"]
            for block in [b for b in self.blocks if b["reserved_by"] == transaction_id]:
                if external:
                    self.blocks.remove(block)
                else:
                    block.update(account_id=int(acquiring["account_id"]),
                                 account_type=int(acquiring["account_type"]),
                                 reserved_by=None)
            record["status"] = COMPLETED
            return True
        if status in (3, 5, 6, 7):
            for block in self.blocks:
                if block["reserved_by"] == transaction_id:
                    block["reserved_by"] = None
            record["status"] = TERMINATED if status == 3 else status
        return False

    # reconciliation (protocol.md 5)

    def take_snapshot(self, reconciliation_id: str, open_transactions: list[str]) -> None:
        """The books at the ITL's marker: every held block (reserved ones too) and which
        of the ITL's open transactions this registry has completed."""
        self.snapshots[reconciliation_id] = {
            "rows": [dict(b) for b in self.blocks],
            "completed_open": [t for t in open_transactions
                               if self.outbound.get(t, {}).get("status") == COMPLETED]}

    def totals(self, reconciliation_id: str) -> dict[str, Any]:
        """``TotalsReported`` of a snapshot: per account, unit type and applicable period
        the units, the block count and the digest of the blocks in normal form."""
        snapshot = self.snapshots[reconciliation_id]
        by_key: dict[tuple[int, int, int, int], list[Block]] = {}
        for row in snapshot["rows"]:
            key = (row["account_type"], row["account_id"], row["unit_type"],
                   row["applicable_commitment_period"])
            by_key.setdefault(key, []).append(row)
        totals = [{"account_type": k[0], "account_id": k[1], "unit_type": k[2],
                   "supp_unit_type": 0, "applicable_commitment_period": k[3],
                   "units": sum(r["serial_end"] - r["serial_start"] + 1 for r in rows),
                   "blocks": len(rows), "digest": digest(rows)}
                  for k, rows in sorted(by_key.items())]
        return {"reconciliation_id": reconciliation_id, "totals": totals,
                "completed_open": snapshot["completed_open"]}

    def unit_blocks(self, reconciliation_id: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
        """``UnitBlocksReported``: the snapshot's blocks under the keys asked."""
        wanted = {(k["account_type"], k["account_id"], k["unit_type"],
                   k["applicable_commitment_period"]) for k in keys}
        rows = [r for r in self.snapshots[reconciliation_id]["rows"]
                if (r["account_type"], r["account_id"], r["unit_type"],
                    r["applicable_commitment_period"]) in wanted]
        return {"reconciliation_id": reconciliation_id,
                "blocks": [{**{f: r.get(f) for f in WIRE_FIELDS},
                            "account_type": r["account_type"],
                            "account_id": r["account_id"]} for r in rows]}


def _row(block: Block) -> list[Any]:
    """A block as the row the digest is made of (the TotalsReported ``digest`` field's
    description: holder, origin, serials, unit type, periods, LULUCF activity, project,
    track, expiry date)."""
    return [block["account_type"], block["account_id"], block["originating_registry"],
            block["serial_start"], block["serial_end"], block["unit_type"],
            block["original_commitment_period"], block["applicable_commitment_period"],
            block.get("lulucf_activity"), block.get("project_id"), block.get("track"),
            block.get("expiry_date")]


def digest(blocks: list[Block]) -> str:
    """The digest of blocks in normal form: sorted by origin and serials, adjacent blocks
    of equal attributes merged, as compact JSON, SHA-256, the first 32 hex digits."""
    merged: list[list[Any]] = []
    for row in sorted((_row(b) for b in blocks), key=lambda r: (r[2], r[3], r[4])):
        last = merged[-1] if merged else None
        if last is not None and last[2] == row[2] and last[4] + 1 == row[3] \
                and last[:2] + last[5:] == row[:2] + row[5:]:
            last[4] = row[4]
        else:
            merged.append(row)
    text = json.dumps(merged, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
