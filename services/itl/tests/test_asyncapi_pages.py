"""The ITL serves the AsyncAPI document of the wire and its HTML page without a token
(docs/adr/0037), in token mode, while its other endpoints still need one.

The app is built as ``python -m services.itl`` builds it, without starting its lifespan:
these pages need neither the store nor the broker (the stack-wide check of every open
and closed endpoint is tests/e2e/test_authentication.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.itl.config import ItlSettings
from services.itl.main import create_app
from shared.codes import MessageType
from shared.contracts.asyncapi import ASYNCAPI_PATH, DOCUMENT_URL, PAGE_URL


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = ItlSettings(
        mongo_url="mongodb://127.0.0.1:1/?directConnection=true",
        amqp_url="amqp://nobody:nothing@127.0.0.1:1/",
        auth_mode="token", auth_issuer="https://issuer.invalid",
        auth_jwks_url="https://issuer.invalid/jwks.json")
    yield TestClient(create_app(settings))


def test_the_document_is_served_without_a_token_as_checked_in(client: TestClient) -> None:
    answer = client.get(DOCUMENT_URL)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.text == ASYNCAPI_PATH.read_text()
    assert json.loads(answer.text)["asyncapi"] == "3.0.0"


def test_the_page_shows_every_channel_and_message_type(client: TestClient) -> None:
    answer = client.get(PAGE_URL)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    for message_type in MessageType:
        assert f'id="message-{message_type.value}"' in page, message_type
    for channel in ("itlInbox", "registryInbox", "deadLetters", "clock", "capture"):
        assert f'id="channel-{channel}"' in page
    assert "<script" not in page and "https://studio.asyncapi.com/" in page
    assert "payload.blocks[].serial_start" in page
    assert "SENDER_MISMATCH" in page


def test_the_other_endpoints_still_need_a_token(client: TestClient) -> None:
    answer = client.get("/transactions")
    assert answer.status_code == 401
    assert "bearer token is required" in answer.json()["detail"]


def test_the_openapi_description_lists_the_pages_without_security(client: TestClient
                                                                   ) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for url in (DOCUMENT_URL, PAGE_URL):
        assert "security" not in paths[url]["get"], url


def test_the_page_escapes_the_descriptions_and_marks_their_code() -> None:
    from shared.contracts.asyncapi_page import inline_markdown

    assert str(inline_markdown("a <script> `des.in.<CODE>` **user**")) == (
        "a &lt;script&gt; <code>des.in.&lt;CODE&gt;</code> <b>user</b>")
