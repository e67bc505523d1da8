"""The deployment files in deploy/: Kubernetes manifests, the compose file, the image's entry point and health check.

No container engine or cluster is needed. The manifests are loaded as YAML and held to what the deployment promises
(non-root, read-only root file system, no capabilities, requests and limits, probes, one Deployment per service, no
secret committed, every service with its own service key and every gRPC server trusting the shared list of public
keys); the entry point and the health check are run as the image runs them, and the service key generator is run.
"""

from __future__ import annotations

import base64
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tend_common.grpc_server import start_grpc_server
from tend_common.service_auth import ServiceKeyError, parse_trusted_services, public_key_text

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"
SECRET_TEMPLATE = KUBERNETES / "secret.example.yaml"
CONFIG_MAP = "tend-config"
KEY_GENERATOR = COMPOSE / "generate-service-keys.py"

SERVICES = ("identity", "checkin", "indicators", "notify", "audit", "portal")
WITH_DATABASE = ("identity", "checkin", "indicators", "notify", "audit")
GRPC_PORTS = {"identity": 50051, "checkin": 50052, "indicators": 50053, "notify": 50054, "audit": 50055}
WEB_PORTS = {"checkin-web": 8001, "portal": 8000}
# Every long-running role of the image, one Deployment (and one compose service) each.
ROLES = (*GRPC_PORTS, *WEB_PORTS)
# Variable names that hold credentials; their values must never be written into a committed file.
SECRET_NAME = re.compile(r"(PASSWORD|PASS|SECRET|_KEY|TOKEN)$")
URL_WITH_PASSWORD = re.compile(r"^[a-z+]+://[^:/@]*:(?P<password>[^@]+)@")
# The public keys of all six services, one shared list: every gRPC server trusts them all, and its own method policy
# decides what each caller may do. In .env (compose) and in the ConfigMap (Kubernetes) under this name.
PUBLIC_KEYS = "TEND_SERVICE_PUBLIC_KEYS"
REQUIRED_FROM_ENV = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]+\}$")


def service_of(role: str) -> str:
    """The service whose TEND_<NAME>_* settings a role reads: checkin-web is check-in's second process."""
    return role.removesuffix("-web")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def kubernetes_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml")


def kubernetes_objects() -> list[dict[str, Any]]:
    return [doc for path in kubernetes_files() if path != SECRET_TEMPLATE for doc in load_documents(path)]


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in kubernetes_objects() if obj["kind"] == kind}


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    workloads = [*objects_of("Deployment").values(), *objects_of("Job").values()]
    return [(f"{w['kind']}/{w['metadata']['name']}", w["spec"]["template"]) for w in workloads]


def only_container(pod_template: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_template["spec"]["containers"]
    assert len(containers) == 1, "one process per pod: scale and probe each role on its own"
    return containers[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def image_user_id() -> int:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    final_user = [line.split()[1] for line in lines if line.startswith("USER ")][-1]
    return int(final_user.split(":")[0])


def compose() -> dict[str, Any]:
    (document,) = load_documents(COMPOSE / "compose.yaml")
    return document


def compose_environment(role: str) -> dict[str, str]:
    return {key: str(value) for key, value in (compose()["services"][role].get("environment") or {}).items()}


def env_example() -> dict[str, str]:
    lines = (COMPOSE / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def config_map() -> dict[str, Any]:
    return objects_of("ConfigMap")[CONFIG_MAP]


def explicit_env(role: str) -> dict[str, dict[str, Any]]:
    """A Deployment's `env` entries (beside `envFrom`), by variable name."""
    entries = only_container(objects_of("Deployment")[role]["spec"]["template"]).get("env", [])
    return {entry["name"]: entry for entry in entries}


# --------------------------------------------------------------------------------------------------------------------
# Kubernetes


def test_every_deploy_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert load_documents(path), f"{path} holds no document"


def test_every_service_role_has_a_deployment_and_a_service() -> None:
    deployments = objects_of("Deployment")
    assert set(deployments) == set(ROLES)
    for name, deployment in deployments.items():
        assert only_container(deployment["spec"]["template"])["args"] == [name], "the entry point role is the name"
    assert set(objects_of("Service")) == set(ROLES)


@pytest.mark.parametrize(("workload", "pod_template"), pod_templates(), ids=[name for name, _ in pod_templates()])
def test_containers_run_unprivileged_with_requests_and_limits(workload: str, pod_template: dict[str, Any]) -> None:
    pod = pod_template["spec"]
    pod_security = pod.get("securityContext", {})
    assert pod_security.get("runAsNonRoot") is True
    assert pod_security.get("runAsUser") == image_user_id() != 0, "the image's numeric user, so runAsNonRoot can check"
    assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False, "no Tend process talks to the Kubernetes API"
    container = only_container(pod_template)
    security = container.get("securityContext", {})
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert security.get("privileged", False) is False
    assert security.get("capabilities", {}).get("drop") == ["ALL"]
    assert not security.get("capabilities", {}).get("add")
    for bound in ("requests", "limits"):
        assert set(container.get("resources", {}).get(bound, {})) >= {"cpu", "memory"}, f"{workload}: {bound}"
    # A read-only root file system needs a writable /tmp (Python, gunicorn, prometheus_client multiprocess files).
    tmp = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 (a path inside the container, not a file of this test)
    assert tmp in container.get("volumeMounts", [])
    assert container["image"] == "tend", "one image for the suite, pinned by the kustomizations"


@pytest.mark.parametrize("role", ROLES)
def test_deployments_have_readiness_and_liveness_probes(role: str) -> None:
    container = only_container(objects_of("Deployment")[role]["spec"]["template"])
    readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
    assert readiness
    assert liveness
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    if role in GRPC_PORTS:
        # Kubernetes' native gRPC probe asks the server's standard health service.
        assert readiness["grpc"]["port"] == liveness["grpc"]["port"] == GRPC_PORTS[role] == ports["grpc"]
    else:
        assert ports["http"] == WEB_PORTS[role]
        assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}, "ready: dependencies answer"
        assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}, "alive: the process answers"


def test_services_route_to_exactly_one_deployment_and_never_to_a_job() -> None:
    deployments = objects_of("Deployment")
    jobs = objects_of("Job")
    for deployment in deployments.values():
        assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment))
    for name, service in objects_of("Service").items():
        selector = service["spec"]["selector"]
        assert [d for d, obj in deployments.items() if selects(selector, pod_labels(obj))] == [name]
        assert not [j for j, obj in jobs.items() if selects(selector, pod_labels(obj))]
        port_names = {port["name"] for port in only_container(deployments[name]["spec"]["template"])["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_checkin_web_scales_on_cpu_from_two_replicas_and_has_a_disruption_budget() -> None:
    web = objects_of("Deployment")["checkin-web"]
    assert "replicas" not in web["spec"], "the autoscaler owns the count; applying the manifest must not reset it"
    (autoscaler,) = objects_of("HorizontalPodAutoscaler").values()
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkin-web"}
    assert autoscaler["spec"]["scaleTargetRef"] == target
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in autoscaler["spec"]["metrics"] if m["type"] == "Resource"] == ["cpu"]
    (budget,) = objects_of("PodDisruptionBudget").values()
    budget_selector = budget["spec"]["selector"]["matchLabels"]
    covered = [name for name, d in objects_of("Deployment").items() if selects(budget_selector, pod_labels(d))]
    assert covered == ["checkin-web"]


def test_a_migrate_job_per_service_with_a_database() -> None:
    jobs = objects_of("Job")
    assert set(jobs) == {f"migrate-{name}" for name in WITH_DATABASE}
    for name in WITH_DATABASE:
        pod = jobs[f"migrate-{name}"]["spec"]["template"]
        assert only_container(pod)["args"] == ["migrate", name]
        assert pod["spec"]["restartPolicy"] == "Never"


def test_settings_come_from_the_config_map_and_each_service_s_own_secret() -> None:
    (config,) = objects_of("ConfigMap").values()
    assert config["metadata"]["name"] == CONFIG_MAP
    prefixes = tuple(f"TEND_{s.upper()}_" for s in SERVICES)
    assert all(key == PUBLIC_KEYS or key.startswith(prefixes) for key in config["data"])
    assert not [key for key in config["data"] if SECRET_NAME.search(key)]
    assert not [key for key in config["data"] if key.endswith(("DATABASE_URL", "AMQP_URL", "REDIS_URL"))]
    templates = {doc["metadata"]["name"] for doc in load_documents(SECRET_TEMPLATE)}
    for workload, pod_template in pod_templates():
        sources = only_container(pod_template)["envFrom"]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources, workload
        secret_names = [source["secretRef"]["name"] for source in sources if "secretRef" in source]
        service = only_container(pod_template)["args"][-1].removesuffix("-web")
        assert secret_names == [f"tend-{service}"], f"{workload} reads only its own service's secrets"
        assert secret_names[0] in templates
        for entry in only_container(pod_template).get("env", []):
            assert entry["name"].startswith(f"TEND_{service.upper()}_"), f"{workload}: {entry['name']}"
            assert set(entry) == {"name", "valueFrom"}, f"{workload}: {entry['name']} is a literal value"
            assert set(entry["valueFrom"]) == {"configMapKeyRef"}, f"{workload}: {entry['name']} not from the map"
            assert entry["valueFrom"]["configMapKeyRef"]["name"] == CONFIG_MAP
            assert entry["valueFrom"]["configMapKeyRef"]["key"] in config["data"], f"{workload}: {entry['name']}"


def test_the_secret_template_holds_placeholders_only() -> None:
    secrets = load_documents(SECRET_TEMPLATE)
    assert {doc["metadata"]["name"] for doc in secrets} == {f"tend-{name}" for name in SERVICES}
    for secret in secrets:
        assert secret["kind"] == "Secret"
        assert "data" not in secret, "base64 data would hide a real value; the template uses readable stringData"
        for key, value in secret["stringData"].items():
            assert key.startswith(f"TEND_{secret['metadata']['name'].removeprefix('tend-').upper()}_")
            assert "CHANGE_ME" in value, f"{key} must be a placeholder"


def test_kustomizations_list_every_manifest_but_the_secret_template() -> None:
    listed: set[Path] = set()
    images = []
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        (document,) = load_documents(kustomization)
        for resource in document["resources"]:
            target = (kustomization.parent / resource).resolve()
            assert target.exists(), f"{kustomization} lists missing {resource}"
            listed.add(target)
        if "images" in document:
            images.append(document["images"])
    assert SECRET_TEMPLATE.resolve() not in listed, "applying it would overwrite the real Secrets with placeholders"
    assert {p.resolve() for p in kubernetes_files()} - {SECRET_TEMPLATE.resolve()} <= listed
    assert len(images) == 2, "the services and the migrate jobs each pin the image"
    assert images[0] == images[1], "migrations and services of a release come from one image"


# --------------------------------------------------------------------------------------------------------------------
# docker compose


def test_compose_has_a_service_per_role_and_a_migrate_job_per_database() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "rabbitmq"} <= set(services)
    for role in ROLES:
        assert services[role]["command"] == [role]
        assert "healthcheck" in services[role]
    for name in WITH_DATABASE:
        assert services[f"migrate-{name}"]["command"] == ["migrate", name]
        assert services[f"migrate-{name}"]["restart"] == "no"
        for role in (name, "checkin-web") if name == "checkin" else (name,):
            condition = services[role]["depends_on"][f"migrate-{name}"]["condition"]
            assert condition == "service_completed_successfully", f"{role} starts only after its migrations"
    for backing in ("postgres", "redis", "rabbitmq"):
        assert "healthcheck" in services[backing]


def test_compose_runs_the_tend_containers_unprivileged() -> None:
    services = compose()["services"]
    for name in (*ROLES, *(f"migrate-{n}" for n in WITH_DATABASE)):
        service = services[name]
        assert service["image"].startswith("tend:")
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "user" not in service, "the image's unprivileged user"


def test_compose_has_no_literal_secrets() -> None:
    interpolated = re.compile(r"^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$")
    for name, service in compose()["services"].items():
        for key, raw in (service.get("environment") or {}).items():
            value = str(raw)
            if SECRET_NAME.search(key):
                assert interpolated.match(value), f"{name}: {key} must come from .env"
            match = URL_WITH_PASSWORD.match(value)
            if match:
                assert interpolated.match(match["password"]), f"{name}: the password in {key} must come from .env"
    example = (COMPOSE / ".env.example").read_text().splitlines()
    for line in example:
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_NAME.search(key):
            assert value == "", f".env.example must leave {key} empty"
    assert ".env" in (ROOT / ".gitignore").read_text().split(), "the filled-in .env must never be committed"


def test_compose_and_kubernetes_set_the_same_variables() -> None:
    shared_names = set(config_map()["data"])
    for secret in load_documents(SECRET_TEMPLATE):
        shared_names |= set(secret["stringData"])
    for role in ROLES:
        compose_names = set(compose_environment(role))
        kubernetes_names = shared_names | set(explicit_env(role))
        assert compose_names <= kubernetes_names, f"{role}: set in compose only: {compose_names - kubernetes_names}"
        missing = set(explicit_env(role)) - compose_names
        assert not missing, f"{role}: set in its Deployment's env only: {missing}"


# --------------------------------------------------------------------------------------------------------------------
# Service keys: each service signs its calls with its own private key; each gRPC server trusts every public key


@pytest.mark.parametrize("role", ROLES)
def test_each_service_gets_its_own_service_key_and_no_other(role: str) -> None:
    service = service_of(role)
    name = f"TEND_{service.upper()}_SERVICE_KEY"
    value = compose_environment(role).get(name, "")
    match = REQUIRED_FROM_ENV.match(value)
    assert match, f"compose {role}: {name} must be required from .env (${{{name}:?...}}), not {value!r}"
    assert match["name"] == name, "one private key per service, never shared"
    others = [key for key in compose_environment(role) if key.endswith("_SERVICE_KEY") and key != name]
    assert not others, f"compose {role} holds another service's key: {others}"
    assert env_example()[name] == "", f".env.example must list {name}, empty"
    # Kubernetes: the key is in the service's own Secret, which the Deployment (and only it) reads.
    secrets = {doc["metadata"]["name"]: doc for doc in load_documents(SECRET_TEMPLATE)}
    assert name in secrets[f"tend-{service}"]["stringData"]
    sources = only_container(objects_of("Deployment")[role]["spec"]["template"])["envFrom"]
    assert {"secretRef": {"name": f"tend-{service}"}} in sources
    assert name not in config_map()["data"], "a private key never goes in the ConfigMap"


@pytest.mark.parametrize("server", GRPC_PORTS)
def test_each_grpc_server_trusts_the_shared_public_keys(server: str) -> None:
    name = f"TEND_{server.upper()}_TRUSTED_SERVICES"
    # compose: required from .env, where one variable lists every service's public key.
    match = REQUIRED_FROM_ENV.match(compose_environment(server).get(name, ""))
    assert match, f"compose {server}: {name} must be required from .env, so authentication can never be off"
    assert match["name"] == PUBLIC_KEYS
    # Kubernetes: from the one ConfigMap key, so a rotation edits one place.
    entry = explicit_env(server).get(name)
    assert entry == {"name": name, "valueFrom": {"configMapKeyRef": {"name": CONFIG_MAP, "key": PUBLIC_KEYS}}}
    assert name not in config_map()["data"], "one shared list, not a copy per server"


def test_checkin_web_gets_the_same_settings_as_the_checkin_server() -> None:
    assert compose_environment("checkin-web") == compose_environment("checkin")
    assert explicit_env("checkin-web") == explicit_env("checkin")


def test_the_public_key_list_placeholders_name_every_service_and_stop_a_server() -> None:
    assert env_example()[PUBLIC_KEYS] == "", ".env.example leaves the list empty, so compose refuses to start"
    template = config_map()["data"][PUBLIC_KEYS]
    entries = template.split(",")
    assert [entry.partition("=")[0] for entry in entries] == list(SERVICES), "all six services, each once"
    assert all("CHANGE_ME" in entry for entry in entries), "placeholders, to be replaced by the generated keys"
    # Empty would turn service authentication off; the placeholders make every server refuse to start instead.
    with pytest.raises(ServiceKeyError):
        parse_trusted_services(entries)


def test_env_example_lists_every_variable_compose_requires() -> None:
    required = {
        match["name"]
        for service in compose()["services"].values()
        for value in (service.get("environment") or {}).values()
        if (match := REQUIRED_FROM_ENV.match(str(value)))
    }
    assert {PUBLIC_KEYS, *(f"TEND_{s.upper()}_SERVICE_KEY" for s in SERVICES)} <= required
    assert required <= set(env_example()), f"missing from .env.example: {required - set(env_example())}"


def test_the_key_generator_prints_every_service_key_and_the_matching_public_list() -> None:
    result = subprocess.run(
        [sys.executable, str(KEY_GENERATOR)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    printed = dict(line.split("=", 1) for line in result.stdout.splitlines())
    private = {s: printed.pop(f"TEND_{s.upper()}_SERVICE_KEY") for s in SERVICES}
    public_list = printed.pop(PUBLIC_KEYS)
    audit_signing_key = printed.pop("TEND_AUDIT_SIGNING_KEY")
    assert not printed, f"unexpected lines: {sorted(printed)}"
    assert len(set(private.values())) == len(SERVICES), "a new key per service"
    assert len(base64.b64decode(audit_signing_key, validate=True)) == 32, "a raw Ed25519 private key"
    assert audit_signing_key not in private.values(), "the log-signing key is not a service key"
    entries = public_list.split(",")
    assert set(parse_trusted_services(entries)) == set(SERVICES)
    assert entries == [f"{s}={public_key_text(key)}" for s, key in private.items()], "each the public half of its key"
    again = subprocess.run([sys.executable, str(KEY_GENERATOR)], capture_output=True, text=True, check=True, timeout=60)
    assert not set(private.values()) & {line.split("=", 1)[1] for line in again.stdout.splitlines()}, "fresh keys"


# --------------------------------------------------------------------------------------------------------------------
# The image: Dockerfile, entry point and health check


def test_the_image_installs_every_service_and_the_entry_point_knows_every_role() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (listed,) = re.findall(r'^ARG TEND_SERVICES="([^"]+)"', dockerfile, flags=re.MULTILINE)
    assert tuple(listed.split()) == SERVICES
    assert re.search(r"^FROM .* AS build$", dockerfile, flags=re.MULTILINE), "multi-stage: tools stay in the build"
    assert image_user_id() >= 1000


@pytest.fixture
def fake_commands(tmp_path: Path) -> dict[str, str]:
    """A PATH whose tend-<name> commands print the arguments they were given, instead of running a service."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in SERVICES:
        command = bin_dir / f"tend-{name}"
        command.write_text(f'#!/bin/sh\necho "tend-{name} $*"\n')
        command.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), *args], env=env, capture_output=True, text=True, check=False, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        *(((role,), f"tend-{role} serve") for role in GRPC_PORTS),
        (("checkin-web",), "tend-checkin web"),
        (("portal",), "tend-portal web"),
        *((("migrate", name), f"tend-{name} migrate") for name in WITH_DATABASE),
        (("run", "audit", "verify"), "tend-audit verify"),
    ],
)
def test_the_entry_point_runs_each_role(fake_commands: dict[str, str], args: tuple[str, ...], runs: str) -> None:
    result = run_entrypoint(fake_commands, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == runs


def test_web_roles_start_with_an_empty_metrics_folder(fake_commands: dict[str, str]) -> None:
    folder = Path(fake_commands["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left over from the last run")
    assert run_entrypoint(fake_commands, "checkin-web").returncode == 0
    assert folder.is_dir()
    assert not list(folder.iterdir())


@pytest.mark.parametrize(
    "args", [("nonsense",), ("migrate",), ("migrate", "portal"), ("migrate", "nonsense"), ("run", "nonsense")]
)
def test_the_entry_point_refuses_unknown_roles(fake_commands: dict[str, str], args: tuple[str, ...]) -> None:
    result = run_entrypoint(fake_commands, *args)
    assert result.returncode == 64
    assert result.stdout == ""
    assert "usage:" in result.stderr


def healthcheck(*args: str) -> int:
    command = [sys.executable, str(DEPLOY / "healthcheck.py"), *args]
    return subprocess.run(command, capture_output=True, check=False, timeout=30).returncode


def test_the_grpc_health_check_passes_only_while_the_server_is_serving() -> None:
    server = start_grpc_server(lambda _server: None, [], port=0)
    try:
        assert healthcheck("grpc", str(server.port)) == 0
    finally:
        server.stop(grace_seconds=0)
    assert healthcheck("grpc", str(server.port)) == 1


class _Readiness(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the test reads exit codes, not access logs."""


@pytest.fixture
def web_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readiness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_http_health_check_expects_200(web_server: int) -> None:
    assert healthcheck("http", str(web_server), "/readyz") == 0
    assert healthcheck("http", str(web_server), "/somewhere-unready") == 1
    assert healthcheck("grpc") == 2
