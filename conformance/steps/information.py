"""Reading what the services show (GET of a path as a caller) and the answer's status and
content."""

from __future__ import annotations

from conformance.steps.library import (
    Family,
)
from conformance.world import ScenarioError, World

FAMILY = Family("Information retrieval")


@FAMILY.when("the {who} asks {service} for {path}")
def ask(world: World, who: str, service: str, path: str) -> None:
    """A ``GET`` of ``path`` at a service (``ITL``, ``KZ``, ``CDM`` ...) as ``operator``
    (the service's operator, the ITL administrator at the ITL), ``authorised body`` or
    ``anonymous caller`` (no token)."""
    name = service.lower()
    if who == "anonymous caller":
        response = world.client.http.get(f"{world.client.urls[name]}{path}")
    elif who == "operator":
        response = world.client.call(name, "GET", path)
    elif who == "authorised body":
        response = world.client.call(name, "GET", path,
                                     headers=world.client.as_authorised_body(name))
    else:
        raise ScenarioError(f"unknown caller {who!r}: operator, authorised body or "
                            "anonymous caller")
    world.answered(name, response)


@FAMILY.then("the answer has HTTP status {code:d}")
def http_status(world: World, code: int) -> None:
    """The last answer's HTTP status."""
    response = world.last_response()
    assert response.status_code == code, f"{response.status_code}: {response.text}"


@FAMILY.then('the answer lists "{text}"')
def answer_lists(world: World, text: str) -> None:
    """The last answer's body contains ``text``."""
    assert text in world.last_response().text, world.last_response().text[:2000]


@FAMILY.then("the answer is a list of at least {count:d} entries")
def answer_count(world: World, count: int) -> None:
    """The last answer is a JSON list with at least ``count`` entries."""
    body = world.last_response().json()
    assert isinstance(body, list) and len(body) >= count, body
