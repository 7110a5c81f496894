"""The wire as AsyncAPI, served by the ITL (docs/adr/0037): ``GET /asyncapi.json``, the
document, and ``GET /asyncapi``, its HTML page. Open to any caller, like the OpenAPI
pages (docs/adr/0015): they describe the protocol, not the books."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from shared.contracts.asyncapi import DOCUMENT_URL, PAGE_URL, document, render
from shared.contracts.asyncapi_page import render_page

router = APIRouter(tags=["wire"])

ASYNCAPI_MEDIA_TYPE = "application/json"


@cache
def _document_text() -> str:
    return render(document())


@cache
def _page() -> str:
    return render_page(document(), DOCUMENT_URL)


@router.get(DOCUMENT_URL, response_class=Response,
            responses={200: {"content": {ASYNCAPI_MEDIA_TYPE: {}},
                             "description": "the AsyncAPI 3.0.0 document (JSON)"}})
async def asyncapi_document() -> Response:
    """The AsyncAPI 3.0.0 document of every channel (exchange, routing key, queue),
    operation and message type of the broker, with the JSON Schemas of the envelope and
    the payloads, the AMQP properties and the response codes: byte for byte the
    checked-in ``shared/contracts/asyncapi.json`` of this version. No token needed."""
    return Response(_document_text(), media_type=ASYNCAPI_MEDIA_TYPE)


@router.get(PAGE_URL, response_class=HTMLResponse)
async def asyncapi_page() -> HTMLResponse:
    """The same document as an HTML page rendered here (tables of servers, channels,
    operations, messages with their fields, code tables; no script, nothing fetched
    from elsewhere). No token needed."""
    return HTMLResponse(_page())
