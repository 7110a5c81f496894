"""Broker identities: every service instance is its own RabbitMQ user (docs/adr/0016).

The user of service ``CODE`` in namespace ``AMQP_NAMESPACE`` is ``<AMQP_NAMESPACE><CODE>``
(``KZ``, or ``t1a2b3c4d5.KZ`` in a test namespace). It publishes every message with the
AMQP ``user_id`` property, which RabbitMQ refuses unless it is the connection's user, and
a receiver takes an envelope only when that validated ``user_id`` is the user of the
envelope's ``sender`` (``publisher_refusal``). Its permissions (``service_permissions``)
let it publish only to the exchanges it needs, with the routing keys of the services it
may address, and read only its own inbox and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.codes import ITL_CODE, ResponseCode
from shared.contracts.validity import MessageRefusal
from shared.messaging.clock import CLOCK_EXCHANGE, LAST_CLOCK_QUEUE
from shared.messaging.topology import (
    CAPTURE_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    MAIN_EXCHANGE,
    Topology,
    inbox_queue_name,
)

#: RabbitMQ's default password hashing function for users in a definitions document.
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def service_user(code: str, namespace: str = "") -> str:
    """The RabbitMQ user of service ``code`` in ``namespace``."""
    return f"{namespace}{code}"


def addressees(code: str, codes: Iterable[str]) -> list[str]:
    """The services ``code`` may send to (protocol.md 1.2): the ITL sends to every
    registry of the namespace and to itself (``TimeOutDue``, docs/adr/0017), a registry
    (the CDM registry included) only to the ITL."""
    if code == ITL_CODE:
        return sorted(set(codes) | {ITL_CODE})
    return [ITL_CODE]


@dataclass(frozen=True)
class TopicPermission:
    """Routing keys a user may publish with (``write``) and bind with (``read``) on one
    topic exchange."""

    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class Permissions:
    """A user's configure, write and read regular expressions in the virtual host."""

    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...]


def _one_of(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def service_permissions(code: str, namespace: str, codes: Iterable[str]) -> Permissions:
    """Least privilege of service ``code`` in a namespace whose services are ``codes``.

    - configure: only its own exclusive clock queue ``sim.clock.<CODE>.<32 hex>``; every
      exchange and inbox is declared by the provisioning step, and opened passively;
    - write: publish to ``des.msg``, ``des.dlx``, ``sim.clock`` and ``rec.capture`` (the
      commands its API took, docs/adr/0034); bind its clock queue;
    - read: consume its own inbox and clock queue, read ``sim.clock.last`` and bind to
      ``sim.clock`` (a binding needs read on the exchange);
    - topic permissions: on ``des.msg`` only the routing keys of ``addressees``, on
      ``des.dlx`` and ``rec.capture`` only its own code; binding to any is refused.
    """
    ns = re.escape(namespace)
    own_clock_queue = f"{ns}{re.escape(CLOCK_EXCHANGE)}\\.{re.escape(code)}\\.[0-9a-f]{{32}}"
    clock = f"{ns}{re.escape(CLOCK_EXCHANGE)}"
    return Permissions(
        configure=_one_of(own_clock_queue),
        write=_one_of(f"{ns}{re.escape(MAIN_EXCHANGE)}", f"{ns}{re.escape(DEAD_LETTER_EXCHANGE)}",
                      clock, f"{ns}{re.escape(CAPTURE_EXCHANGE)}", own_clock_queue),
        read=_one_of(re.escape(inbox_queue_name(code, namespace)), clock,
                     f"{ns}{re.escape(LAST_CLOCK_QUEUE)}", own_clock_queue),
        topics=(
            TopicPermission(f"{namespace}{MAIN_EXCHANGE}",
                            write=_one_of(*map(re.escape, addressees(code, codes))), read="^$"),
            TopicPermission(f"{namespace}{DEAD_LETTER_EXCHANGE}",
                            write=_one_of(re.escape(code)), read="^$"),
            TopicPermission(f"{namespace}{CAPTURE_EXCHANGE}",
                            write=_one_of(re.escape(code)), read="^$"),
        ),
    )


def publisher_refusal(sender: str, user_id: str | None, namespace: str) -> MessageRefusal | None:
    """Whether an envelope claiming to come from ``sender`` was published by someone else.

    ``user_id`` is the AMQP property RabbitMQ validated against the publishing
    connection's user. None when it is ``sender``'s user; otherwise 1002
    SENDER_MISMATCH with a reason naming both users (protocol.md 1.2: the ITL refuses a
    message whose sender is not the declared registry; docs/adr/0016).
    """
    expected = service_user(sender, namespace)
    if user_id == expected:
        return None
    published_by = f"user {user_id}" if user_id else "a publisher that did not set user_id"
    return MessageRefusal(
        ResponseCode.SENDER_MISMATCH,
        f"sender {sender} is not the publisher: the message was published by "
        f"{published_by}, {sender} publishes as {expected}")


def new_password() -> str:
    """A random password for a service user (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """``password`` hashed as RabbitMQ's ``rabbit_password_hashing_sha256`` stores it:
    base64 of a 4-byte salt followed by SHA-256(salt + UTF-8 password)."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass(frozen=True)
class UserDefinition:
    """A user of a definitions document: a service (``permissions``) or an administrator
    (``tags`` ``["administrator"]``, every permission)."""

    name: str
    password: str
    permissions: Permissions | None = None
    tags: tuple[str, ...] = ()


def administrator(name: str, password: str) -> UserDefinition:
    return UserDefinition(name, password, Permissions(".*", ".*", ".*", ()), ("administrator",))


def service_identities(topology: Topology, passwords: Mapping[str, str]
                       ) -> list[UserDefinition]:
    """The user of every service of ``topology`` with its permissions; ``passwords`` maps
    each code to its password."""
    return [UserDefinition(service_user(code, topology.namespace), passwords[code],
                           service_permissions(code, topology.namespace, topology.codes))
            for code in topology.codes]


def definitions(topology: Topology | None, users: Iterable[UserDefinition], vhost: str = "/",
                salt: bytes | None = None) -> dict[str, Any]:
    """A RabbitMQ definitions document: the virtual host, ``users`` with their permissions
    and, with ``topology``, its exchanges, queues and bindings. ``salt`` fixes the
    password salt (for a file kept in the repository); by default each hash gets a
    random one."""
    users = list(users)
    document: dict[str, Any] = {
        "vhosts": [{"name": vhost}],
        "users": [{"name": u.name, "password_hash": password_hash(u.password, salt),
                   "hashing_algorithm": HASHING_ALGORITHM, "tags": list(u.tags)}
                  for u in users],
        "permissions": [{"user": u.name, "vhost": vhost, "configure": u.permissions.configure,
                         "write": u.permissions.write, "read": u.permissions.read}
                        for u in users if u.permissions is not None],
        "topic_permissions": [{"user": u.name, "vhost": vhost, "exchange": t.exchange,
                               "write": t.write, "read": t.read}
                              for u in users if u.permissions is not None
                              for t in u.permissions.topics],
    }
    if topology is not None:
        document.update(topology.definitions(vhost))
    return document
