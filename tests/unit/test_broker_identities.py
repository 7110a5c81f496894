"""Broker identities without a broker: user names, the permission regexes at their
boundaries, the publisher check, password hashes, definitions documents, URLs and TLS
settings (docs/adr/0016)."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from pathlib import Path

import pytest

from deploy.rabbitmq import CODES, compose_definitions, password, render
from shared.codes import ResponseCode
from shared.messaging import TlsSettings, Topology
from shared.messaging.broker import url_user
from shared.messaging.identities import (
    addressees,
    definitions,
    password_hash,
    publisher_refusal,
    service_identities,
    service_permissions,
    service_user,
)
from shared.messaging.provisioning import identity_url, vhost_of
from shared.testing.certificates import CertificateAuthority

NS = "t0123456789."
CODES_OF_A_STACK = ("ITL", "KZ", "CH", "JP", "CDM")
HEX = "0123456789abcdef" * 2


def allowed(pattern: str, name: str) -> bool:
    """Whether a RabbitMQ permission regex grants ``name`` (it is searched, as PCRE)."""
    return re.search(pattern, name) is not None


def test_a_service_user_is_its_code_in_its_namespace() -> None:
    assert service_user("KZ") == "KZ"
    assert service_user("KZ", NS) == "t0123456789.KZ"


def test_the_itl_addresses_every_registry_and_itself_and_a_registry_only_the_itl() -> None:
    # itself: the TimeOutDue it sends through its own inbox (docs/adr/0017)
    assert addressees("ITL", CODES_OF_A_STACK) == ["CDM", "CH", "ITL", "JP", "KZ"]
    assert addressees("KZ", CODES_OF_A_STACK) == ["ITL"]
    assert addressees("CDM", CODES_OF_A_STACK) == ["ITL"]


@pytest.mark.parametrize(("name", "configure", "write", "read"), [
    (f"{NS}des.in.KZ", False, False, True),
    (f"{NS}des.in.JP", False, False, False),
    (f"{NS}des.in.ITL", False, False, False),
    (f"{NS}des.in.KZX", False, False, False),
    (f"{NS}des.dead.KZ", False, False, False),
    ("t9999999999.des.in.KZ", False, False, False),
    ("des.in.KZ", False, False, False),
    (f"{NS}des.msg", False, True, False),
    (f"{NS}des.dlx", False, True, False),
    (f"{NS}des.msgX", False, False, False),
    ("des.msg", False, False, False),
    (f"{NS}sim.clock", False, True, True),
    (f"{NS}rec.capture", False, True, False),
    (f"{NS}rec.journal", False, False, False),
    (f"{NS}sim.clock.last", False, False, True),
    (f"{NS}sim.clock.KZ.{HEX}", True, True, True),
    (f"{NS}sim.clock.KZ.{HEX[:-1]}", False, False, False),
    (f"{NS}sim.clock.KZ.{HEX}0", False, False, False),
    (f"{NS}sim.clock.JP.{HEX}", False, False, False),
    (f"{NS}snoop", False, False, False),
    ("amq.gen-abc", False, False, False),
    ("amq.default", False, False, False),
])
def test_a_registry_may_configure_write_and_read_only_what_it_needs(
    name: str, configure: bool, write: bool, read: bool,
) -> None:
    granted = service_permissions("KZ", NS, CODES_OF_A_STACK)
    assert (allowed(granted.configure, name), allowed(granted.write, name),
            allowed(granted.read, name)) == (configure, write, read)


def test_the_namespace_is_matched_literally() -> None:
    # the dot of the namespace is not "any character"
    granted = service_permissions("KZ", NS, CODES_OF_A_STACK)
    assert not allowed(granted.read, "t0123456789Xdes.in.KZ")
    assert not allowed(granted.write, f"{NS}desXmsg")


@pytest.mark.parametrize(("code", "exchange", "key", "may"), [
    ("KZ", "des.msg", "ITL", True),
    ("KZ", "des.msg", "JP", False),
    ("KZ", "des.msg", "KZ", False),
    ("KZ", "des.msg", "ITLX", False),
    ("KZ", "des.dlx", "KZ", True),
    ("KZ", "des.dlx", "JP", False),
    ("ITL", "des.msg", "KZ", True),
    ("ITL", "des.msg", "CDM", True),
    ("ITL", "des.msg", "ITL", True),  # its own TimeOutDue (ADR 0017)
    ("ITL", "des.msg", "DE", False),
    ("ITL", "des.dlx", "ITL", True),
    ("ITL", "des.dlx", "KZ", False),
    ("KZ", "rec.capture", "KZ", True),
    ("KZ", "rec.capture", "ITL", False),
])
def test_topic_permissions_restrict_the_recipients_a_service_may_publish_to(
    code: str, exchange: str, key: str, may: bool,
) -> None:
    topics = {t.exchange: t for t in service_permissions(code, NS, CODES_OF_A_STACK).topics}
    assert allowed(topics[f"{NS}{exchange}"].write, key) == may
    assert not allowed(topics[f"{NS}{exchange}"].read, key)  # nobody binds to them


def test_an_envelope_is_taken_only_from_the_user_of_its_sender() -> None:
    assert publisher_refusal("JP", f"{NS}JP", NS) is None
    assert publisher_refusal("KZ", "KZ", "") is None
    forged = publisher_refusal("JP", f"{NS}KZ", NS)
    assert forged is not None
    assert forged.code == ResponseCode.SENDER_MISMATCH
    assert forged.reason == (f"sender JP is not the publisher: the message was published by "
                             f"user {NS}KZ, JP publishes as {NS}JP")
    unsigned = publisher_refusal("KZ", None, NS)
    assert unsigned is not None
    assert "a publisher that did not set user_id" in unsigned.reason
    # the same code in another namespace, or the shared login, is someone else
    assert publisher_refusal("KZ", "KZ", NS) is not None
    assert publisher_refusal("KZ", "guest", "") is not None
    assert publisher_refusal("KZ", "", "") is not None


def test_a_password_hash_is_rabbitmqs_salted_sha256() -> None:
    salt = b"\x90\x8d\xc6\x0a"
    stored = base64.b64decode(password_hash("secret", salt))
    assert stored == salt + hashlib.sha256(salt + b"secret").digest()
    assert password_hash("secret") != password_hash("secret")  # a fresh salt each time


def test_a_definitions_document_has_the_users_their_permissions_and_the_topology() -> None:
    topology = Topology(NS, ("ITL", "KZ"))
    users = service_identities(topology, {"ITL": "a", "KZ": "b"})
    document = definitions(topology, users, vhost="/sim")
    assert [u["name"] for u in document["users"]] == [f"{NS}ITL", f"{NS}KZ"]
    assert {u["tags"] == [] for u in document["users"]} == {True}
    assert {p["vhost"] for p in document["permissions"]} == {"/sim"}
    assert sorted((t["user"], t["exchange"], t["write"])
                  for t in document["topic_permissions"]) == [
        (f"{NS}ITL", f"{NS}des.dlx", "^(ITL)$"), (f"{NS}ITL", f"{NS}des.msg", "^(ITL|KZ)$"),
        (f"{NS}ITL", f"{NS}rec.capture", "^(ITL)$"),
        (f"{NS}KZ", f"{NS}des.dlx", "^(KZ)$"), (f"{NS}KZ", f"{NS}des.msg", "^(ITL)$"),
        (f"{NS}KZ", f"{NS}rec.capture", "^(KZ)$")]
    assert sorted(e["name"] + ":" + e["type"] for e in document["exchanges"]) == [
        f"{NS}des.dlx:topic", f"{NS}des.msg:topic", f"{NS}rec.capture:topic",
        f"{NS}sim.clock:fanout"]
    assert not any(q["name"] == f"{NS}rec.journal" for q in document["queues"])
    inbox = next(q for q in document["queues"] if q["name"] == f"{NS}des.in.KZ")
    assert inbox["arguments"]["x-dead-letter-exchange"] == f"{NS}des.dlx"
    assert {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]} \
        >= {(f"{NS}des.msg", f"{NS}des.in.KZ", "KZ"), (f"{NS}des.dlx", f"{NS}des.dead.KZ", "KZ"),
            (f"{NS}sim.clock", f"{NS}sim.clock.last", "")}
    assert "exchanges" not in definitions(None, users)


def test_a_recording_topology_binds_its_journal_stream_to_every_exchange() -> None:
    """docs/adr/0034: the journal takes what the inboxes take (the same routing keys, so
    a message to no service stays unroutable), the dead letters, the clock and the
    captures."""
    document = Topology(NS, ("ITL", "KZ"), recording=True).definitions()
    journal = next(q for q in document["queues"] if q["name"] == f"{NS}rec.journal")
    assert journal["arguments"]["x-queue-type"] == "stream"
    assert journal["durable"] is True
    assert {(b["source"], b["routing_key"]) for b in document["bindings"]
            if b["destination"] == f"{NS}rec.journal"} == {
        (f"{NS}des.msg", "ITL"), (f"{NS}des.msg", "KZ"), (f"{NS}des.dlx", "ITL"),
        (f"{NS}des.dlx", "KZ"), (f"{NS}sim.clock", ""), (f"{NS}rec.capture", "#")}


def test_the_compose_definitions_file_is_the_generated_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for code in (*CODES, "ADMIN"):
        monkeypatch.delenv(f"BROKER_PASSWORD_{code}", raising=False)
    committed = Path(__file__).parents[2] / "deploy" / "rabbitmq" / "definitions.json"
    assert committed.read_text() == render(), "run python -m deploy.rabbitmq"
    compose = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    for code in CODES:
        assert f"AMQP_URL: amqp://{code}:{password(code)}@rabbitmq:5672/" in compose
    admins = [u for u in compose_definitions()["users"] if u["tags"] == ["administrator"]]
    assert [u["name"] for u in admins] == ["kyoto-admin"]


def test_a_service_url_is_the_administrators_with_the_services_login() -> None:
    url = identity_url("amqps://guest:guest@broker.example:5671/%2Fsim?heartbeat=30",
                       "t1.KZ", "p@ss/w:rd")
    assert url == "amqps://t1.KZ:p%40ss%2Fw%3Ard@broker.example:5671/%2Fsim?heartbeat=30"
    assert url_user(url) == "t1.KZ"
    assert vhost_of(url) == "/sim"
    assert vhost_of("amqp://h/") == "/"
    assert url_user("amqp://127.0.0.1/") == "guest"


def test_tls_files_belong_to_an_amqps_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an amqps:// URL"):
        TlsSettings(ca_file="ca.pem").context("amqp://h/")
    assert TlsSettings().context("amqp://h/") is None
    authority = CertificateAuthority(tmp_path)
    client = authority.issue("client", "KZ", server=False)
    context = TlsSettings(str(authority.ca_file), str(client.cert_file),
                          str(client.key_file)).context("amqps://h/")
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert len(context.get_ca_certs()) == 1
