"""Provisioning with administrator rights: the users, permissions, exchanges and queues of
a namespace, created in one batch and torn down again (docs/adr/0016).

Two administration channels, chosen by ``admin_from_environment``:

- ``RabbitmqCtl``: the ``rabbitmqctl`` command line (no plugin needed). A call costs
  about 0.6 s (an Erlang VM starts), so a namespace is created with one
  ``import_definitions`` of a generated definitions document and its users deleted with
  one ``eval``;
- ``ManagementApi``: the management plugin's HTTP API (``RABBITMQ_MANAGEMENT_URL``),
  ``POST /api/definitions`` and ``POST /api/users/bulk-delete``.

The namespace's queues and exchanges are deleted over AMQP with the administrator's
connection (fast, and the same on both channels).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import httpx

from shared.messaging.identities import (
    definitions,
    new_password,
    service_identities,
    service_user,
)
from shared.messaging.topology import Topology


class BrokerAdminError(RuntimeError):
    """An administration command failed; the message names the command and its output."""


class BrokerAdmin(Protocol):
    """What provisioning needs from an administration channel of the broker."""

    async def import_definitions(self, document: dict[str, Any]) -> None:
        """Create or update what a definitions document describes (existing users get the
        document's password hash and permissions)."""

    async def delete_users(self, names: Sequence[str]) -> None:
        """Delete these users (unknown ones are ignored); their connections are closed."""


def _erlang_binary(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'<<"{escaped}"/utf8>>'


@dataclass(frozen=True)
class RabbitmqCtl:
    """Administration through ``rabbitmqctl`` (``command``, on ``node`` if given, with
    ``env`` added to the environment, e.g. ``HOME`` for a private node's cookie)."""

    command: tuple[str, ...] = ("rabbitmqctl",)
    node: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    async def run(self, *args: str, stdin: bytes | None = None) -> str:
        """Run one ``rabbitmqctl`` command; raises ``BrokerAdminError`` when it fails."""
        argv = [*self.command, *(["-n", self.node] if self.node else []), "-q", *args]
        pipe = asyncio.subprocess.PIPE
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=pipe, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **self.env},
            # out of the terminal's process group: a Ctrl-C does not cut a command short
            # whose work the broker finishes anyway (users created after their deletion)
            start_new_session=True)
        try:
            output, _ = await process.communicate(stdin)
        except BaseException:  # cancelled (Ctrl-C): let the command end, then go on
            await process.wait()
            raise
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise BrokerAdminError(
                f"{shlex.join(argv[:len(argv) - len(args) + 1])} failed with exit status "
                f"{process.returncode}: {text.strip()[:2000]}")
        return text

    async def import_definitions(self, document: dict[str, Any]) -> None:
        # from standard input: the command may run as another user that cannot read our
        # temporary files (the packaged wrapper switches to the rabbitmq user)
        await self.run("import_definitions", stdin=json.dumps(document).encode())

    async def delete_users(self, names: Sequence[str]) -> None:
        if not names:
            return
        users = ", ".join(_erlang_binary(name) for name in names)
        try:
            await self.run("eval", f"[rabbit_auth_backend_internal:delete_user(U, "
                                   f"<<\"provisioning\">>) || U <- [{users}]].")
        except BrokerAdminError:
            # the internal function may differ in another version: one command per user
            for name in names:
                with contextlib.suppress(BrokerAdminError):  # already gone
                    await self.run("delete_user", name)


@dataclass(frozen=True)
class ManagementApi:
    """Administration through the management plugin's HTTP API at ``url``
    (``http://user:password@host:15672``, an administrator)."""

    url: str

    def _client(self) -> httpx.AsyncClient:
        parts = urlsplit(self.url)
        base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                           parts.path.rstrip("/"), "", ""))
        return httpx.AsyncClient(base_url=base, timeout=30,
                                 auth=(unquote(parts.username or "guest"),
                                       unquote(parts.password or "guest")))

    async def _post(self, path: str, body: Any) -> None:
        async with self._client() as client:
            response = await client.post(path, json=body)
        if response.status_code >= 300:
            raise BrokerAdminError(f"POST {path} answered {response.status_code}: "
                                   f"{response.text[:2000]}")

    async def import_definitions(self, document: dict[str, Any]) -> None:
        await self._post("/api/definitions", document)

    async def delete_users(self, names: Sequence[str]) -> None:
        if names:
            await self._post("/api/users/bulk-delete", {"users": list(names)})


def admin_from_environment() -> BrokerAdmin:
    """``ManagementApi(RABBITMQ_MANAGEMENT_URL)`` when that is set, else ``RabbitmqCtl``
    with the command in ``RABBITMQCTL`` (default ``rabbitmqctl``)."""
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if management:
        return ManagementApi(management)
    return RabbitmqCtl(tuple(shlex.split(os.environ.get("RABBITMQCTL", "rabbitmqctl"))))


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names (``/`` when its path is empty)."""
    return unquote(urlsplit(amqp_url).path[1:]) or "/"


def identity_url(amqp_url: str, user: str, password: str) -> str:
    """``amqp_url`` (scheme, host, port, virtual host, query kept) as ``user``."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True)
class Identity:
    """The broker login of one service instance: its user and the AMQP URL it connects
    with (password inside, kept out of ``repr``)."""

    code: str
    user: str
    password: str = field(repr=False)
    url: str = field(repr=False)


@dataclass
class Provisioned:
    """What ``provision`` created: the topology and one identity per service code."""

    topology: Topology
    identities: dict[str, Identity]

    @property
    def users(self) -> list[str]:
        return [identity.user for identity in self.identities.values()]


async def provision(admin: BrokerAdmin, amqp_url: str, namespace: str,
                    codes: Iterable[str], recording: bool = False) -> Provisioned:
    """Create, in one batch, the topology of ``namespace`` for ``codes`` (with the
    journal stream that records it when ``recording``, docs/adr/0034) and one user per
    code with a fresh random password and least-privilege permissions; returns their
    AMQP URLs (``amqp_url``, the administrator's, with the user's login)."""
    topology = Topology(namespace, tuple(dict.fromkeys(codes)), recording)
    passwords = {code: new_password() for code in topology.codes}
    await admin.import_definitions(definitions(
        topology, service_identities(topology, passwords), vhost_of(amqp_url)))
    return Provisioned(topology, {
        code: Identity(code, service_user(code, namespace), password,
                       identity_url(amqp_url, service_user(code, namespace), password))
        for code, password in passwords.items()})


async def delete_topology(amqp_url: str, topology: Topology,
                          ssl_context: ssl.SSLContext | None = None) -> None:
    """Delete the queues and exchanges of ``topology`` over AMQP (the administrator's
    ``amqp_url``); what does not exist is skipped."""
    connection = await aio_pika.connect(amqp_url, ssl_context=ssl_context)
    try:
        for queue in topology.queues():
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()


async def deprovision(admin: BrokerAdmin, users: Sequence[str], amqp_url: str,
                      topology: Topology | None,
                      ssl_context: ssl.SSLContext | None = None) -> None:
    """Delete ``users`` and, with ``topology``, its queues and exchanges."""
    await admin.delete_users(users)
    if topology is not None:
        await delete_topology(amqp_url, topology, ssl_context)
