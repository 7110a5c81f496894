"""docker-compose.yml as users run it, checked without Docker against what the code reads
(docs/adr/0045): every service's image or build, command, environment (each variable a
setting of the service's pydantic-settings model, every required one set, the values
valid), its own MongoDB, its broker login, ports and health checks, ``depends_on`` and
profiles, under each profile's env file; the Prometheus targets and the Grafana
dashboard's metrics. ``problems`` lists what is wrong; the tests at the end break a copy
of the file in each way and expect ``problems`` to name it."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from deploy.console.config import ConsoleSettings
from deploy.rabbitmq import password
from services.cdm_registry.config import CdmSettings
from services.itl.config import ItlSettings
from services.registry.config import RegistrySettings
from services.registry.esd.config import EsdSettings
from shared import metrics  # noqa: F401  (registers the counters the dashboards show)
from shared.auth import AuthMode, TokenVerifier
from shared.codes import CDM_CODE, ITL_CODE
from shared.service import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY_ENV = ROOT / "deploy" / "otel" / "observability.env"
IDENTITY_ENV = ROOT / "deploy" / "keycloak" / "identity.env"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DOCKERFILE = "deploy/Dockerfile"

#: The settings each service module reads (its ``create_app``), by ``python -m`` module.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "services.itl": (ItlSettings,),
    "services.registry": (RegistrySettings, EsdSettings),
    "services.cdm_registry": (CdmSettings,),
}
#: Modules of the project's image that read no settings model: what they read is checked
#: on its own below.
OTHER_MODULES = {"deploy.issuer": "command-line arguments",
                 "deploy.console": "ConsoleSettings, checked by console_problems"}
#: Read by the OpenTelemetry SDK by their standard names, not by the services' settings.
OTEL_VARIABLES = frozenset({"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"})
#: The HTTP metrics of the request middleware (http_requests_total by route and status,
#: the latency histogram): the dashboard shows them as soon as the services expose them.
HTTP_METRICS = frozenset({"http_requests_total", "http_request_duration_seconds_bucket"})
#: Containers without a health check, and why.
NO_PROBE = {"otel-collector": "distroless image: no program inside to probe with"}
#: Each profile's env file (None: the default stack).
PROFILES: dict[str | None, Path | None] = {
    None: None, "member-states": None, "observability": OBSERVABILITY_ENV,
    "identity": IDENTITY_ENV}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def env_file(path: Path | None) -> dict[str, str]:
    """``KEY=value`` lines of a compose env file (comments and blank lines skipped)."""
    if path is None:
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's interpolation of ``${NAME}`` and ``${NAME:-default}`` in every string."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables.get(m["name"]) or m["default"] or "", value)
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    return value


def environment(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """A container's environment: a variable without a value comes from compose's own
    environment (the env file here) and is unset when that has none."""
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) if "=" in item else (item, None)
                        for item in declared)
    resolved = {}
    for key, value in declared.items():
        if value is None:
            if key in variables:
                resolved[key] = variables[key]
        else:
            resolved[key] = str(value)
    return resolved


def module_of(service: Mapping[str, Any]) -> str | None:
    """The ``python -m`` module a service of the project's image runs."""
    command = service.get("command") or []
    if command[:2] == ["python", "-m"] and len(command) > 2:
        return str(command[2])
    return None


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """The environment variables a settings model reads, each with its field name."""
    prefix = str(model.model_config.get("env_prefix") or "")
    names = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):  # an alias is read as it is, without prefix
            names.update({choice: name for choice in alias.choices
                          if isinstance(choice, str) and choice.isupper()})
        else:
            names[f"{prefix}{name}".upper()] = name
    return names


def settings_of(model: type[BaseSettings], env: Mapping[str, str]) -> BaseSettings:
    """``model`` read from ``env`` alone: not from this process's environment or a file."""
    names = env_names(model)
    with pytest.MonkeyPatch.context() as patch:
        for key in names:
            patch.delenv(key, raising=False)
        values: dict[str, Any] = {names[key]: value for key, value in env.items()
                                  if key in names}
        return model(_env_file=None, **values)


def url_port(url: str) -> int | None:
    return urlsplit(url).port


def health_url(service: Mapping[str, Any]) -> str | None:
    """The URL a health check asks, when it asks one."""
    test = " ".join(str(part) for part in (service.get("healthcheck") or {}).get("test", []))
    found = re.search(r"https?://[^'\"\s)]+", test)
    return found.group(0) if found else None


def container_ports(service: Mapping[str, Any]) -> dict[int, int]:
    """Host port by container port of ``ports: ["8101:8000"]``."""
    mapped = {}
    for entry in service.get("ports") or []:
        host, _, inside = str(entry).rpartition(":")
        mapped[int(inside)] = int(host)
    return mapped


def profiles_of(service: Mapping[str, Any]) -> set[str]:
    return set(service.get("profiles") or [])


def service_code(env: Mapping[str, str], module: str) -> str:
    if module == "services.itl":
        return ITL_CODE
    if module == "services.cdm_registry":
        return CDM_CODE
    return env.get("REGISTRY_CODE", "KZ")


def app_services(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    for name, service in document["services"].items():
        module = module_of(service)
        if module is not None and module in SETTINGS:
            yield name, service, module


def problems(document: dict[str, Any], variables: Mapping[str, str]) -> list[str]:
    """What is wrong with the compose ``document`` run with ``variables`` (an env file):
    each problem names the service and the setting."""
    document = interpolate(document, variables)
    services: dict[str, dict[str, Any]] = document["services"]
    found: list[str] = []
    stores_used: dict[str, str] = {}
    host_ports: dict[int, str] = {}
    registries: set[str] = set()
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            if dependency not in services:
                found.append(f"{name}: depends on {dependency}, which is no service")
                continue
            other = services[dependency]
            if how.get("condition") == "service_healthy" and "healthcheck" not in other:
                found.append(f"{name}: waits for {dependency} to be healthy, which has "
                             "no health check")
            if profiles_of(other) and not profiles_of(other) & profiles_of(service):
                found.append(f"{name}: depends on {dependency} of profiles "
                             f"{sorted(profiles_of(other))}, which may not run with it")
        if "healthcheck" not in service and name not in NO_PROBE:
            found.append(f"{name}: no health check")
        if "image" in service and (":" not in service["image"]
                                   or service["image"].endswith(":latest")):
            found.append(f"{name}: image {service['image']} has no pinned tag")
        build = service.get("build") or {}
        module = module_of(service)
        if build and module not in SETTINGS and module not in OTHER_MODULES:
            found.append(f"{name}: runs {module} of the project's image, whose settings "
                         "this test does not know: add its model to SETTINGS")
        for host in container_ports(service).values():
            if host in host_ports:
                found.append(f"{name}: host port {host} is also {host_ports[host]}'s")
            host_ports[host] = name
    for name, service, module in app_services(document):
        env = environment(service, variables)
        build = service.get("build") or {}
        if build.get("context") != "." or build.get("dockerfile") != DOCKERFILE:
            found.append(f"{name}: not built from {DOCKERFILE} in the project")
        if importlib.util.find_spec(module) is None:
            found.append(f"{name}: runs {module}, which is no module")
        readable = {}
        for model in SETTINGS[module]:
            readable.update(env_names(model))
        for key in sorted(set(env) - set(readable) - OTEL_VARIABLES):
            found.append(f"{name}: sets {key}, which {module} does not read")
        for model in SETTINGS[module]:
            try:
                settings = settings_of(model, env)
            except ValidationError as exc:
                found.append(f"{name}: {model.__name__} refuses its environment: {exc}")
                continue
            if (isinstance(settings, EsdSettings) and settings.enabled
                    and settings.emissions_2005 is None):
                found.append(f"{name}: a Member State without ESD_2005_EMISSIONS refuses "
                             "every limited use (4112; README, Effort sharing)")
            if isinstance(settings, ServiceSettings) and settings.auth_mode == AuthMode.TOKEN:
                try:
                    TokenVerifier(settings)
                except ValueError as exc:
                    found.append(f"{name}: {exc}")
        code = service_code(env, module)
        if module == "services.registry":
            registries.add(code)
        if env.get("OTEL_SERVICE_NAME") != name:
            found.append(f"{name}: OTEL_SERVICE_NAME is {env.get('OTEL_SERVICE_NAME')!r}, "
                         "not the service's name")
        # its own store, a one-member replica set that its health check initiates
        mongo_url = env.get("MONGO_URL", "")
        store = urlsplit(mongo_url).hostname or ""
        if store in stores_used:
            found.append(f"{name}: MONGO_URL {mongo_url} is {stores_used[store]}'s store")
        stores_used[store] = name
        mongo = services.get(store)
        if mongo is None or not str(mongo.get("image", "")).startswith("mongo:"):
            found.append(f"{name}: MONGO_URL {mongo_url!r} names no MongoDB service")
        else:
            command = mongo.get("command") or []
            replica_set = command[command.index("--replSet") + 1] \
                if "--replSet" in command else None
            if parse_qs(urlsplit(mongo_url).query).get("replicaSet") != [replica_set]:
                found.append(f"{name}: MONGO_URL's replicaSet is not {store}'s "
                             f"({replica_set})")
            if environment(mongo, variables).get("REPLICA_HOST") != \
                    f"{store}:{url_port(mongo_url) or 27017}":
                found.append(f"{store}: REPLICA_HOST is not the address {name} uses")
            if (service.get("depends_on") or {}).get(store, {}).get("condition") != \
                    "service_healthy":
                found.append(f"{name}: does not wait for its store {store} to be healthy")
        # its own broker login, as deploy/rabbitmq/definitions.json has it
        amqp = urlsplit(env.get("AMQP_URL", ""))
        if (amqp.username, amqp.password) != (code, password(code)):
            found.append(f"{name}: AMQP_URL logs in as {amqp.username}, not as {code} "
                         "with its password of deploy/rabbitmq")
        if amqp.hostname not in services:
            found.append(f"{name}: AMQP_URL names {amqp.hostname}, which is no service")
        elif (service.get("depends_on") or {}).get(amqp.hostname, {}).get("condition") != \
                "service_healthy":
            found.append(f"{name}: does not wait for the broker to be healthy")
        # ports and the health check
        port = int(env.get("HTTP_PORT", "0"))
        if port not in container_ports(service):
            found.append(f"{name}: HTTP_PORT {port} is not the container port it publishes")
        probe = health_url(service)
        if probe is None or url_port(probe) != port or urlsplit(probe).path != "/health":
            found.append(f"{name}: its health check asks {probe}, not /health on "
                         f"HTTP_PORT {port}")
        if env.get("HTTP_HOST") != "0.0.0.0":
            found.append(f"{name}: HTTP_HOST is not 0.0.0.0: unreachable from the network")
        if env.get("ESD_ENABLED") == "true" and "member-states" not in profiles_of(service):
            found.append(f"{name}: an EU Member State outside the member-states profile")
        # the identity provider and the trace collector it is pointed at
        for key in ("AUTH_JWKS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            target = urlsplit(env.get(key, "")).hostname
            if target is not None and target not in services:
                found.append(f"{name}: {key} names {target}, which is no service")
    itl = next((env for _, service, module in app_services(document)
                if module == "services.itl"
                for env in [environment(service, variables)]), None)
    if itl is not None:
        itl_settings = settings_of(ItlSettings, {"REGISTRIES": itl.get("REGISTRIES", "[]")})
        assert isinstance(itl_settings, ItlSettings)
        known = set(itl_settings.registries)
        if known != registries | {CDM_CODE}:
            found.append(f"itl: REGISTRIES {sorted(known)} are not the compose file's "
                         f"registries {sorted(registries | {CDM_CODE})}")
    issuer = services.get("issuer")
    if issuer is not None:
        command = issuer.get("command") or []
        initial = set(command[command.index("--init") + 1].split(",")) \
            if "--init" in command else set()
        if initial != registries:
            found.append(f"issuer: --init {sorted(initial)} is not the registries "
                         f"{sorted(registries)}")
    found.extend(console_problems(services, variables))
    return found


def console_problems(services: Mapping[str, dict[str, Any]], variables: Mapping[str, str]
                     ) -> list[str]:
    """What is wrong with the web console's container (deploy/console): every variable a
    ``ConsoleSettings`` field, every service URL a container's HTTP_PORT, the token URL
    a container, the health check on its port."""
    service = services.get("console")
    if service is None:
        return []
    found = []
    env = environment(service, variables)
    for key in sorted(set(env) - set(env_names(ConsoleSettings)) - {"LOG_LEVEL"}):
        found.append(f"console: {key} is no setting the console reads")
    values: dict[str, Any] = dict(env)
    if "CONSOLE_SERVICES" in env:  # pydantic-settings decodes JSON from the environment
        values["CONSOLE_SERVICES"] = json.loads(env["CONSOLE_SERVICES"])
    try:
        settings = settings_of(ConsoleSettings, values)
    except ValidationError as refused:
        return [*found, f"console: refuses its environment: {refused}"]
    assert isinstance(settings, ConsoleSettings)
    for code, url in settings.services.items():
        target = services.get(urlsplit(url).hostname or "")
        if target is None:
            found.append(f"console: CONSOLE_SERVICES {code} names no service ({url})")
            continue
        port = environment(target, variables).get("HTTP_PORT")
        if port is None or url_port(url) != int(port):
            found.append(f"console: CONSOLE_SERVICES {code} asks port {url_port(url)}, "
                         f"not the service's HTTP_PORT {port}")
    if urlsplit(settings.token_url).hostname not in services:
        found.append(f"console: CONSOLE_TOKEN_URL {settings.token_url} names no service")
    probe = health_url(service)
    if probe is None or url_port(probe) != settings.port \
            or settings.port not in container_ports(service):
        found.append(f"console: its health check asks {probe}, not /health on "
                     f"CONSOLE_PORT {settings.port}")
    if env.get("CONSOLE_HOST") != "0.0.0.0":
        found.append("console: CONSOLE_HOST is not 0.0.0.0: unreachable from the network")
    return found


def document_and_variables(profile: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    return load(), env_file(PROFILES[profile])


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_compose_file_runs_what_the_code_reads(profile: str | None) -> None:
    document, variables = document_and_variables(profile)
    assert problems(document, variables) == []


def test_each_profile_changes_the_services_as_its_env_file_says() -> None:
    document = load()
    services = document["services"]
    profiled = {p for s in services.values() for p in profiles_of(s)}
    assert profiled == {p for p in PROFILES if p is not None}
    plain = {name: environment(interpolate(s, {}), {}) for name, s, _ in app_services(document)}
    assert all("OTEL_EXPORTER_OTLP_ENDPOINT" not in env for env in plain.values())
    assert {env["AUTH_ISSUER"] for env in plain.values()} == {"http://issuer:8090"}
    observed = env_file(OBSERVABILITY_ENV)
    for name, service, _ in app_services(document):
        env = environment(interpolate(service, observed), observed)
        collector = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert collector.hostname == "otel-collector", name
        assert "observability" in profiles_of(services["otel-collector"])
        assert f"0.0.0.0:{collector.port}" in (ROOT / "deploy/otel/collector.yaml").read_text()
    identity = env_file(IDENTITY_ENV)
    keycloak = services["keycloak"]
    assert profiles_of(keycloak) == {"identity"}
    realm_file = json.loads((ROOT / "deploy/keycloak/kyoto-realm.json").read_text())
    realm = realm_file["realm"]
    roles = {role["name"] for role in realm_file["roles"]["realm"]}
    for _, service, module in app_services(document):
        code = service_code(environment(service, {}), module)
        if module == "services.registry":
            assert {f"{code}:operator", f"{code}:authorised-body"} <= roles, code
    hostname = keycloak["environment"]["KC_HOSTNAME"]
    for name, service, _ in app_services(document):
        env = environment(interpolate(service, identity), identity)
        assert env["AUTH_ISSUER"] == f"{hostname}/realms/{realm}", name
        assert urlsplit(env["AUTH_JWKS_URL"]).port in container_ports(keycloak), name


def test_member_states_run_only_under_their_profile_and_are_known_everywhere() -> None:
    document = load()
    member_states = {environment(s, {})["REGISTRY_CODE"] for _, s, _ in app_services(document)
                     if environment(s, {}).get("ESD_ENABLED") == "true"}
    assert member_states == {"DE", "FR"}
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    assert member_states <= {user["name"] for user in definitions["users"]}


def test_prometheus_scrapes_every_service_and_nothing_else() -> None:
    document = load()
    expected = {f"{name}:{environment(s, {})['HTTP_PORT']}" for name, s, _ in
                app_services(document)}
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {target for job in config["scrape_configs"]
               for group in job["static_configs"] for target in group["targets"]}
    assert targets == expected
    assert {job["metrics_path"] for job in config["scrape_configs"]} == {"/metrics"}


def test_the_dashboards_use_the_metrics_the_services_expose() -> None:
    suffix = {"counter": "_total", "histogram": "_bucket"}
    exposed = {f"{family.name}{suffix[family.type]}" for family in REGISTRY.collect()
               if family.type in suffix} | HTTP_METRICS
    dashboards = list(DASHBOARDS.glob("*.json"))
    assert dashboards
    used: set[str] = set()
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "prometheus", panel["title"]
                used |= set(re.findall(r"\b([a-z_]+_(?:total|bucket))\b", target["expr"]))
    assert used - exposed == set()
    assert {"messages_handled_total", "messages_published_total", "store_commands_total",
            "message_handling_failures_total"} <= used


# The checks can fail: a copy of the file broken in each way is caught, by name.

def broken(change: Any) -> list[str]:
    document = copy.deepcopy(load())
    change(document["services"])
    return problems(document, {})


def _set(path: list[str], value: Any) -> Any:
    def change(services: dict[str, Any]) -> None:
        target = services
        for key in path[:-1]:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(path[-1])
        else:
            target[path[-1]] = value
    return change


@pytest.mark.parametrize(("change", "named"), [
    (_set(["registry-kz", "environment", "MONGO_URL"],
          "mongodb://mongo-itl:27017/?replicaSet=rs0"), "is itl's store"),
    (_set(["registry-kz", "environment", "MONGO_URL"],
          "mongodb://mongo-kz:27017/?replicaSet=rs1"), "replicaSet is not"),
    (_set(["registry-kz", "environment", "REGISTRY_CODES"], "KZ"),
     "sets REGISTRY_CODES, which services.registry does not read"),
    (_set(["itl", "environment", "REGISTRY_CODE"], "KZ"),
     "sets REGISTRY_CODE, which services.itl does not read"),
    (_set(["itl", "environment", "AUTH_ISSUER"], ""), "need AUTH_ISSUER"),
    (_set(["itl", "environment", "TRANSACTION_TIMEOUT_HOURS"], "-1"), "refuses its environment"),
    (_set(["registry-ch", "environment", "AMQP_URL"], "amqp://KZ:kz-dev-password@rabbitmq:5672/"),
     "logs in as KZ, not as CH"),
    (_set(["registry-ch", "environment", "HTTP_PORT"], "8001"), "HTTP_PORT 8001"),
    (_set(["registry-ch", "healthcheck"], None), "registry-ch: no health check"),
    (_set(["registry-ch", "depends_on", "mongo-ch"], None), "does not wait for its store"),
    (_set(["registry-ch", "depends_on", "otel-collector"], {"condition": "service_healthy"}),
     "which has no health check"),
    (_set(["itl", "depends_on", "keycloak"], {"condition": "service_started"}),
     "which may not run with it"),
    (_set(["registry-jp", "ports"], ["8101:8000"]), "host port 8101"),
    (_set(["registry-de", "profiles"], None), "outside the member-states profile"),
    (_set(["registry-fr", "environment", "ESD_2005_EMISSIONS"], None),
     "a Member State without ESD_2005_EMISSIONS"),
    (_set(["itl", "environment", "REGISTRIES"], '["KZ", "CH", "JP", "CDM"]'),
     "are not the compose file's registries"),
    (_set(["registry-kz", "environment", "OTEL_SERVICE_NAME"], "kz"), "OTEL_SERVICE_NAME"),
    (_set(["mongo-kz", "environment"], {"REPLICA_HOST": "mongo:27017"}), "REPLICA_HOST"),
    (_set(["mongo-kz", "image"], "mongo"), "no pinned tag"),
    (_set(["itl", "command"], ["python", "-m", "services.console"]),
     "whose settings this test does not know"),
    (_set(["console", "environment", "CONSOLE_SERVICE"], "{}"),
     "CONSOLE_SERVICE is no setting"),
    (_set(["console", "environment", "CONSOLE_SERVICES"], '{"ITL": "http://itl:8000", "KZ": "http://registry-kz:8001"}'),
     "not the service's HTTP_PORT"),
    (_set(["console", "environment", "CONSOLE_SERVICES"], '{"ITL": "http://itl:8000", "KZ": "http://kz:8000"}'),
     "names no service"),
    (_set(["console", "environment", "CONSOLE_TOKEN_URL"], "http://idp:8080/token"),
     "CONSOLE_TOKEN_URL"),
    (_set(["console", "environment", "CONSOLE_PORT"], "8191"), "CONSOLE_PORT 8191"),
])
def test_a_broken_compose_file_is_caught_by_name(change: Any, named: str) -> None:
    found = broken(change)
    assert any(named in problem for problem in found), found
