"""Private RabbitMQ nodes (shared.testing.rabbit_node), never the shared one: the compose
definitions loaded at boot, TLS and mutual TLS to the broker with an authority made here,
the management API as the administration channel, and services that come back after
node restarts with every message's effect stored once (docs/adr/0016)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import aio_pika
import pytest

from deploy.rabbitmq import HERE as COMPOSE_BROKER
from deploy.rabbitmq import password
from shared.codes import ITL_CODE, MessageType, TransactionStatus
from shared.contracts import Envelope, TransactionStatusNotified
from shared.messaging import Broker, TlsSettings, inbox_queue_name
from shared.messaging.provisioning import ManagementApi, deprovision, provision
from shared.service import Runtime, ServiceSettings
from shared.store import Session
from shared.testing.certificates import CertificateAuthority, CertificateFiles
from shared.testing.infra import eventually
from shared.testing.messages import status_from_itl
from shared.testing.rabbit_node import NodeTls, RabbitNode

pytestmark = pytest.mark.integration


def status(recipient: str, transaction_id: str) -> Envelope:
    return status_from_itl(transaction_id, recipient, TransactionStatus.CHECKED_NO_DISCREPANCY)


class TlsNode:
    def __init__(self, node: RabbitNode, authority: CertificateAuthority,
                 client: CertificateFiles) -> None:
        self.node, self.authority, self.client = node, authority, client

    def settings(self, *, authority: bool = True, certificate: bool = True) -> TlsSettings:
        return TlsSettings(str(self.authority.ca_file) if authority else None,
                           str(self.client.cert_file) if certificate else None,
                           str(self.client.key_file) if certificate else None)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    """A node with a TLS listener that requires a client certificate and the management
    plugin, booted with the compose definitions file (so it has no guest user)."""
    directory = tmp_path_factory.mktemp("pki")
    authority = CertificateAuthority(directory)
    server = authority.issue("server", "localhost", server=True)
    client = authority.issue("client", "KZ", server=False)
    node = RabbitNode(
        tls=NodeTls(authority.ca_file, server.cert_file, server.key_file,
                    verify_peer=True, require_client_certificate=True),
        management=True,
        extra_config=[f"load_definitions = {COMPOSE_BROKER / 'definitions.json'}"])
    with node:
        yield TlsNode(node, authority, client)


async def test_the_compose_definitions_load_at_boot_and_each_service_logs_in_as_itself(
    tls_node: TlsNode,
) -> None:
    node = tls_node.node
    for code in ("ITL", "KZ", "CDM"):
        url = f"amqp://{code}:{password(code)}@127.0.0.1:{node.port}/"
        connection = await aio_pika.connect(url)
        try:
            queue = await (await connection.channel()).get_queue(inbox_queue_name(code))
            assert queue.name == f"des.in.{code}"
        finally:
            await connection.close()
    users = (await node.admin.run("list_users", "--silent")).split()
    assert "kyoto-admin" in users
    assert "guest" not in users  # a node booted with definitions creates no default user


async def test_a_service_connects_over_tls_with_the_authority_and_its_certificate_only(
    tls_node: TlsNode, mongo_url: str,
) -> None:
    node = tls_node.node
    namespace = f"t{uuid.uuid4().hex[:10]}."
    # provisioned through the management API, as the compose broker's administrator
    admin = ManagementApi(node.management_url.replace(
        "guest:guest", f"kyoto-admin:{password('ADMIN')}"))
    provisioned = await provision(admin, node.tls_url, namespace, [ITL_CODE, "KZ"])
    try:
        urls = {code: identity.url for code, identity in provisioned.identities.items()}
        assert urls["KZ"].startswith("amqps://")
        itl = Broker(urls["ITL"], ITL_CODE, namespace=namespace, tls=tls_node.settings())
        # KZ as a service reads it from its settings (AMQP_CA_FILE, AMQP_CERT_FILE, ...)
        files = tls_node.settings()
        kz = Runtime(ServiceSettings(mongo_url=mongo_url, amqp_url=urls["KZ"],
                                     amqp_namespace=namespace, amqp_ca_file=files.ca_file,
                                     amqp_cert_file=files.cert_file,
                                     amqp_key_file=files.key_file),
                     code="KZ", default_database=f"tls_{uuid.uuid4().hex[:10]}")
        received: list[Envelope] = []

        async def collect(envelope: Envelope) -> None:
            received.append(envelope)

        await itl.connect(["KZ"])
        await kz.start(collect)
        try:
            sent = status("KZ", "KZ1")
            await itl.publish(sent)

            async def arrived() -> list[Envelope] | None:
                return received or None

            assert [e.message_id for e in await eventually(arrived, "the message")] == [
                sent.message_id]
        finally:
            await kz.stop()
            await itl.close()

        # without the authority the broker's certificate is not trusted
        with pytest.raises(aio_pika.exceptions.AMQPConnectionError,
                           match="CERTIFICATE_VERIFY_FAILED"):
            await Broker(urls["KZ"], "KZ", namespace=namespace,
                         tls=tls_node.settings(authority=False, certificate=False)).connect()
        # the node verifies peers and requires a certificate: without one it hangs up
        # (TLS 1.3 reports it after the handshake: the connection is reset, or the alert
        # "certificate required" arrives, whichever the client reads first)
        with pytest.raises(aio_pika.exceptions.AMQPConnectionError):
            await Broker(urls["KZ"], "KZ", namespace=namespace,
                         tls=tls_node.settings(certificate=False)).connect()
        # TLS files with a plain URL are a configuration error, not a silent downgrade
        plain = urls["KZ"].replace("amqps://", "amqp://")
        with pytest.raises(ValueError, match="not an amqps:// URL"):
            Broker(plain, "KZ", namespace=namespace, tls=tls_node.settings())
    finally:
        await deprovision(admin, provisioned.users, node.url, None)
    assert not set(provisioned.users) & set(
        (await node.admin.run("list_users", "--silent")).split())


@pytest.fixture
def node() -> Iterator[RabbitNode]:
    """A node of its own; gone afterwards, data and all."""
    with RabbitNode() as started:
        assert started.port != 5672
        yield started
    assert not started.running
    assert not started.workdir.exists()


def runtime(mongo_url: str, url: str, code: str, namespace: str,
            peers: tuple[str, ...] = ()) -> Runtime:
    settings = ServiceSettings(mongo_url=mongo_url, amqp_url=url, amqp_namespace=namespace,
                               tick_seconds=0.2)
    return Runtime(settings, code=code, default_database=f"restart_{uuid.uuid4().hex[:10]}",
                   peer_codes=peers)


async def test_services_come_back_after_node_restarts_and_store_each_message_once(
    node: RabbitNode, mongo_url: str,
) -> None:
    """The ITL sends through its outbox while the node restarts, gracefully and with
    kill -9: KZ reconnects, consumes again and stores each message's effect once; the
    clock still reaches it."""
    admin = node.admin
    namespace = f"t{uuid.uuid4().hex[:10]}."
    provisioned = await provision(admin, node.url, namespace, [ITL_CODE, "KZ"])
    urls = {code: identity.url for code, identity in provisioned.identities.items()}
    itl = runtime(mongo_url, urls[ITL_CODE], ITL_CODE, namespace, ("KZ",))
    kz = runtime(mongo_url, urls["KZ"], "KZ", namespace)

    async def ignore(envelope: Envelope) -> None:
        raise AssertionError(f"the ITL got {envelope}")

    async def record(envelope: Envelope) -> None:
        async def effect(session: Session) -> None:
            await kz.db.effects.insert_one({"message_id": envelope.message_id},
                                           session=session)

        await kz.handle_once(envelope, effect)

    async def send(first: int, count: int) -> None:
        async def work(session: Session) -> None:
            for number in range(first, first + count):
                await itl.send(session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                               recipient="KZ", correlation_id=f"KZ{number}",
                               payload=TransactionStatusNotified(
                                   transaction_id=f"KZ{number}",
                                   status=TransactionStatus.CHECKED_NO_DISCREPANCY))

        await itl.commit(work)

    def effects(count: int) -> Callable[[], Awaitable[int | None]]:
        async def probe() -> int | None:
            stored = await kz.db.effects.count_documents({})
            return stored if stored >= count else None
        return probe

    await itl.start(ignore)
    await kz.start(record)
    try:
        sent = 0
        for hard in (False, True):
            await send(sent, 20)
            sent += 20
            await asyncio.to_thread(node.restart, hard)
            await send(sent, 5)  # committed while the services reconnect
            sent += 5
            await eventually(effects(sent), f"{sent} effects at KZ")
        moment = datetime(2014, 1, 1, tzinfo=UTC)
        await itl.set_clock(moment, broadcast=True)

        async def moved() -> bool | None:
            return True if kz.clock.now() >= moment else None

        await eventually(moved, "KZ's clock to follow the ITL's after the restarts")
        rows = await kz.db.effects.find({}, {"_id": 0, "message_id": 1}).to_list()
        published = await itl.db.outbox.find({}, {"_id": 1}).to_list()
        assert len(rows) == sent == len(published)
        assert sorted(r["message_id"] for r in rows) == sorted(p["_id"] for p in published)
    finally:
        await kz.stop()
        await itl.stop()
        await deprovision(admin, provisioned.users, node.url, provisioned.topology)
    assert not set(provisioned.users) & set(
        (await node.admin.run("list_users", "--silent")).split())
