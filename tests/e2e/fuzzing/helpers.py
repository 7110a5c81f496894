"""What both fuzzing modules check the stack with: publishing a batch of bodies and
waiting until every inbox's consumer is past it, and the services' logs of failures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from deploy.local.stack import LocalStack
from shared.testing.infra import DeadLetter, dead_letters_until, publish_each_as
from shared.testing.message_fuzz import FuzzMessage

#: A sender whose login may address each inbox, for the batch's last message.
LAST_FROM = {"ITL": "KZ", "KZ": "ITL", "CDM": "ITL"}
#: Log events that mean a service did not cope with a message or with what one left.
FAILURE_EVENTS = ("message_handling_failed", "due_work_failed")


def publish(stack: LocalStack, messages: list[FuzzMessage], tag: str
            ) -> tuple[dict[str, FuzzMessage], dict[str, list[DeadLetter]]]:
    """Publish ``messages`` (AMQP message ids ``<tag>-<n>``) and then, to each inbox, a
    last body that is no JSON; wait until every inbox's consumer has dead-lettered its
    last one, so it is past all the others. The messages by id, and the dead letters
    per inbox (the last ones removed)."""
    assert stack.broker is not None
    by_id = {f"{tag}-{n}": m for n, m in enumerate(messages)}
    last = {inbox: f"{tag}-last-{inbox}" for inbox in LAST_FROM}
    identities = stack.broker.identities
    asyncio.run(publish_each_as(stack.namespace, identities, [
        (m.sender, m.recipient, i, m.body) for i, m in by_id.items()]))
    asyncio.run(publish_each_as(stack.namespace, identities, [
        (LAST_FROM[inbox], inbox, i, b"end of batch") for inbox, i in last.items()]))
    dead = asyncio.run(dead_letters_until(stack.namespace, last, seconds=180))
    return by_id, {inbox: [d for d in letters if d.message_id != last[inbox]]
                   for inbox, letters in dead.items()}


def drain(stack: LocalStack, tag: str) -> dict[str, list[DeadLetter]]:
    """Wait until every inbox's consumer is past what is in its queue now (a body that
    is no JSON, published to each, is dead-lettered); the dead letters until then."""
    return publish(stack, [], tag)[1]


def failures_logged(stack: LocalStack, since: dict[str, int]) -> list[dict[str, Any]]:
    """``FAILURE_EVENTS`` in the services' logs after line ``since[service]``."""
    found = []
    for name in ("itl", "kz", "cdm"):
        lines = (stack.log_dir / f"{name}.log").read_text().splitlines()[since.get(name, 0):]
        for line in lines:
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") in FAILURE_EVENTS:
                    found.append({"service": name, **entry})
    return found


def log_lengths(stack: LocalStack) -> dict[str, int]:
    return {name: len((stack.log_dir / f"{name}.log").read_text().splitlines())
            for name in ("itl", "kz", "cdm")}


