"""docker-compose.yml is a production stack (issue 13): checked by reading it, since no Docker engine runs here.

Each test parses the compose file (and the configs it mounts) and checks one promise of deploy/README.md:
forgeflow's services set only variables forgeflow reads, the workers share no disk, the sandbox worker
holds no secret, every worker uses the same S3 store on MinIO, the webhook holds only its own secret and
listens on loopback for a reverse proxy, and the observability profile is whole.
What forgeflow reads comes from the code (the settings' aliases, the store's AWS variables, the
OpenTelemetry SDK's variables), so a renamed setting fails here rather than in a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import opentelemetry.environment_variables as otel_api_variables
import opentelemetry.sdk.environment_variables as otel_sdk_variables
import pytest
import yaml

from config.settings import SANDBOX_TASK_QUEUE, SECRET_VARIABLES, Settings
from starter.sandbox_process import STORAGE_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY = "observability"
OBSERVABILITY_SERVICES = {"otel-collector", "jaeger", "prometheus"}
WEBHOOK_SECRET = "GITHUB_WEBHOOK_SECRET"

Service = dict[str, Any]


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the `<<` merge keys
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, Service]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def environment(service: Service) -> dict[str, str | None]:
    """A service's variables, from the mapping or the list form; a bare name (passed from the shell) is None."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}
    flat: dict[str, str | None] = {}
    merged = env.get("<<", [])  # only where a loader left a merge key unresolved; safe_load does not
    for base in merged if isinstance(merged, list) else [merged]:
        flat.update(environment({"environment": base}))
    flat.update({key: None if value is None else str(value) for key, value in env.items() if key != "<<"})
    return flat


def command(service: Service) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def queues(service: Service) -> list[str]:
    """The task queues a worker's command names (`--queue X` or `--queue=X`)."""
    args = command(service)
    named = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--queue"]
    return named + [arg.split("=", 1)[1] for arg in args if arg.startswith("--queue=")]


def is_forgeflow(service: Service) -> bool:
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return context in (".", "./") or "forgeflow" in str(service.get("image", ""))


def forgeflow_services() -> dict[str, Service]:
    return {name: s for name, s in services().items() if is_forgeflow(s)}


def workers() -> dict[str, Service]:
    def runs_worker(args: list[str]) -> bool:
        return "worker.py" in args or ("forgeflow", "worker") in pairwise(args)

    return {name: s for name, s in forgeflow_services().items() if runs_worker(command(s))}


def sandbox_workers() -> dict[str, Service]:
    return {name: s for name, s in workers().items() if name == "sandbox" or SANDBOX_TASK_QUEUE in queues(s)}


def webhooks() -> dict[str, Service]:
    """Services that run `forgeflow webhook`."""
    return {name: s for name, s in forgeflow_services().items() if ("forgeflow", "webhook") in pairwise(command(s))}


def mounts(service: Service) -> Iterator[tuple[str, bool]]:
    """(what is mounted, read-write) for each named volume or host path; anonymous volumes and tmpfs
    belong to one container, so they are left out."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, writable = volume.get("source"), not volume.get("read_only", False)
            if volume.get("type") in ("tmpfs", "npipe") or not source:
                continue
        else:
            parts = str(volume).split(":")
            if len(parts) == 1:
                continue
            source, writable = parts[0], not (len(parts) > 2 and "ro" in parts[2].split(","))
        is_path = source.startswith((".", "/", "~"))
        yield (str((ROOT / source).resolve()) if is_path else f"volume:{source}"), writable


def bind_sources(service: Service) -> list[Path]:
    return [Path(source) for source, _ in mounts(service) if not source.startswith("volume:")]


def mounted_files(service: Service) -> list[Path]:
    """The host files a service mounts, those in mounted folders included."""
    found = (path.rglob("*") if path.is_dir() else [path] for path in bind_sources(service))
    return sorted(path for paths in found for path in paths if path.is_file())


@cache
def variables_forgeflow_reads() -> frozenset[str]:
    """Every setting's alias, the store's AWS variables, and the OpenTelemetry variables of the SDK
    forgeflow exports with (telemetry/setup.py: OTEL_EXPORTER_OTLP_*, OTEL_TRACES_EXPORTER, ...)."""
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    otel = {
        name for module in (otel_api_variables, otel_sdk_variables) for name in vars(module) if name.startswith("OTEL_")
    }
    return frozenset(aliases | set(STORAGE_VARIABLES) | otel)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"A": "1", "B": None}, {"A": "1", "B": None}),
        (["A=1=2", "B"], {"A": "1=2", "B": None}),
        ({"<<": {"A": "1", "B": "2"}, "B": "3"}, {"A": "1", "B": "3"}),  # a merge key left unresolved
        ({"<<": [{"A": "1"}, ["C=4"]]}, {"A": "1", "C": "4"}),
    ],
)
def test_environment_reads_every_form(env: Any, expected: dict[str, str | None]) -> None:
    assert environment({"environment": env}) == expected


def test_the_file_describes_workers_and_a_sandbox_worker() -> None:
    assert set(workers()) >= {"worker", "sandbox"}, f"worker services found: {sorted(workers())}"
    assert sandbox_workers(), "no service serves the sandbox queue"


@pytest.mark.parametrize("name", sorted(forgeflow_services()))
def test_every_variable_is_one_forgeflow_reads(name: str) -> None:
    unknown = sorted(set(environment(services()[name])) - variables_forgeflow_reads())
    assert not unknown, f"service {name} sets variables forgeflow never reads: {unknown}"


def test_no_two_workers_mount_the_same_volume_or_path() -> None:
    seen: dict[str, str] = {}
    for name, service in workers().items():
        for source, _ in mounts(service):
            assert source not in seen, f"workers {seen[source]} and {name} both mount {source}"
            seen[source] = name


def test_no_worker_mounts_what_another_forgeflow_service_writes() -> None:
    for name, service in workers().items():
        mine = {source for source, _ in mounts(service)}
        for other, other_service in forgeflow_services().items():
            written = {source for source, writable in mounts(other_service) if writable}
            if other != name and mine & written:
                pytest.fail(f"worker {name} mounts {sorted(mine & written)}, which {other} mounts read-write")


def test_replicas_of_a_worker_share_no_writable_disk() -> None:
    # `docker compose up --scale worker=3` gives every replica the same named volumes and host paths.
    for name, service in workers().items():
        shared = [source for source, writable in mounts(service) if writable]
        assert not shared, f"every replica of {name} would write to {shared}: use an anonymous volume or tmpfs"


@pytest.mark.parametrize("name", sorted(sandbox_workers()))
def test_the_sandbox_worker_holds_no_secret_and_serves_only_the_sandbox(name: str) -> None:
    service = sandbox_workers()[name]
    held = sorted(set(environment(service)) & set(SECRET_VARIABLES))
    assert not held, f"sandbox worker {name} sets {held}; it refuses to start with a secret in its environment"
    assert queues(service) == [SANDBOX_TASK_QUEUE], f"sandbox worker {name} serves {queues(service)}"
    assert_key_ring_is_a_secret(name, service)


def assert_key_ring_is_a_secret(name: str, service: Service) -> None:
    """A key ring the service reads from a file comes as a docker secret, never as a host path."""
    ring = environment(service).get("FORGEFLOW_CODEC_KEYS_FILE")
    if ring:
        secret = ring.removeprefix("/run/secrets/")
        assert secret in (service.get("secrets") or []), f"{name} reads the key ring from {ring}, not a secret"
        assert secret in (compose().get("secrets") or {}), f"secret {secret} is not defined"


def test_the_file_describes_a_webhook_that_is_no_worker() -> None:
    assert webhooks(), "no service runs forgeflow webhook"
    both = sorted(set(webhooks()) & set(workers()))
    assert not both, f"{both} run the webhook and a worker in one service"


@pytest.mark.parametrize("name", sorted(webhooks()))
def test_the_webhook_holds_its_own_secret_and_nothing_else(name: str) -> None:
    # The webhook faces the internet: it verifies deliveries and starts workflows, and the workers do the work.
    service = webhooks()[name]
    env = environment(service)
    held = sorted(set(env) & set(SECRET_VARIABLES) - {WEBHOOK_SECRET})
    assert not held, f"webhook {name} sets {held}; only the workers hold those"
    github = sorted(key for key in env if key.startswith("GITHUB_") and key != WEBHOOK_SECRET)
    assert not github, f"webhook {name} sets {github}; it never calls GitHub"
    store = sorted(set(env) & set(STORAGE_VARIABLES))
    assert not store, f"webhook {name} sets the store's {store}; it reads and writes no run content"
    # Passed from the shell or .env, never written here (forgeflow webhook refuses to start without it).
    assert WEBHOOK_SECRET in env and env[WEBHOOK_SECRET] is None, f"webhook {name} must take {WEBHOOK_SECRET} as is"
    # Opt-in: a stack that does not use GitHub's webhooks needs neither the service nor its secret.
    assert service.get("profiles"), f"webhook {name} runs in every stack; give it a profile"
    assert_key_ring_is_a_secret(name, service)


def published(service: Service) -> Iterator[tuple[str, str]]:
    """(host address, port) of each port a service publishes; no address means every interface."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            yield str(port.get("host_ip") or ""), str(port.get("published") or port.get("target"))
            continue
        parts = str(port).rsplit(":", 2)
        yield (parts[0] if len(parts) == 3 else ""), parts[-2] if len(parts) > 1 else parts[-1]


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (["127.0.0.1:8080:8080"], [("127.0.0.1", "8080")]),
        (["8080:8080", "9000"], [("", "8080"), ("", "9000")]),
        ([{"target": 8080, "published": 80, "host_ip": "127.0.0.1"}], [("127.0.0.1", "80")]),
    ],
)
def test_published_reads_every_form(ports: list[Any], expected: list[tuple[str, str]]) -> None:
    assert list(published({"ports": ports})) == expected


@pytest.mark.parametrize("name", sorted(webhooks()))
def test_the_webhook_listens_on_loopback_for_a_reverse_proxy(name: str) -> None:
    # TLS belongs to the proxy in front; plain HTTP on every interface would carry deliveries in the clear.
    exposed = [(host, port) for host, port in published(webhooks()[name]) if host != "127.0.0.1"]
    assert not exposed, f"webhook {name} publishes {exposed} beyond this host's loopback"


@pytest.mark.parametrize("variable", ["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "FORGEFLOW_TASK_QUEUE"])
def test_the_webhook_starts_work_where_the_workers_serve(variable: str) -> None:
    found = {name: environment(s).get(variable) for name, s in {**workers(), **webhooks()}.items()}
    assert len(set(found.values())) == 1, f"{variable} differs between the webhook and the workers: {found}"


def test_every_worker_uses_the_same_s3_store() -> None:
    urls = {name: environment(service).get("FORGEFLOW_STORAGE_URL") for name, service in workers().items()}
    assert all(url and url.startswith("s3://") for url in urls.values()), f"FORGEFLOW_STORAGE_URL: {urls}"
    assert len(set(urls.values())) == 1, f"workers on different stores: {urls}"


def minio_services() -> dict[str, Service]:
    return {name: s for name, s in services().items() if "minio/minio" in str(s.get("image", ""))}


def storage_bucket() -> str:
    url = environment(services()["worker"]).get("FORGEFLOW_STORAGE_URL") or ""
    return urlsplit(url).netloc


def bucket_creators() -> dict[str, Service]:
    """Services that run `mc mb`, in their command or in a script they mount."""

    def text(service: Service) -> str:
        files = [path.read_text() for path in mounted_files(service)]
        return " ".join([*command(service), *map(str, service.get("entrypoint") or []), *files])

    return {name: s for name, s in services().items() if "mc mb" in text(s)}


@pytest.mark.parametrize("name", sorted(workers()))
def test_workers_reach_the_store_on_minio_once_its_bucket_exists(name: str) -> None:
    service, env = workers()[name], environment(workers()[name])
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    assert urlsplit(endpoint).hostname in minio_services(), f"{name}'s S3 endpoint {endpoint!r} is not MinIO"
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):  # the short form: each only started, none waited for
        depends = {dep: {"condition": "service_started"} for dep in depends}
    done = {dep for dep, how in depends.items() if how.get("condition") == "service_completed_successfully"}
    assert done & set(bucket_creators()), f"{name} starts before the bucket exists: depends_on {depends}"
    assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"), f"{name} has no store credentials"


def test_workers_never_hold_minio_root_credentials() -> None:
    root = {v for s in minio_services().values() for k, v in environment(s).items() if k.startswith("MINIO_ROOT")}
    root_vars = {m for value in root for m in re.findall(r"\$\{?(\w+)", value or "")}
    for name, service in workers().items():
        for key, value in environment(service).items():
            assert value not in root, f"{name}'s {key} is MinIO's root credential"
            assert not set(re.findall(r"\$\{?(\w+)", value or "")) & root_vars, f"{name}'s {key} uses {root_vars}"


def test_the_workers_minio_policy_reaches_the_bucket_only() -> None:
    bucket = storage_bucket()
    policies = [
        json.loads(path.read_text())
        for service in bucket_creators().values()
        for path in mounted_files(service)
        if path.suffix == ".json"
    ]
    assert policies, "the bucket-creating service mounts no policy (json) for the workers' user"
    resources = {r for policy in policies for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, resources


def observability_services() -> dict[str, Service]:
    return {name: s for name, s in services().items() if OBSERVABILITY in (s.get("profiles") or [])}


def test_the_observability_profile_is_whole() -> None:
    missing = OBSERVABILITY_SERVICES - set(observability_services())
    assert not missing, f"profile {OBSERVABILITY} lacks {sorted(missing)}"
    for name, service in observability_services().items():
        for path in bind_sources(service):
            assert path.exists(), f"{name} mounts {path}, which does not exist"
    for name in ("otel-collector", "prometheus"):
        configs = bind_sources(services()[name])
        assert any(path.is_file() and path.parent == ROOT / "deploy" for path in configs), f"{name}: no deploy/ config"


def config_of(name: str) -> dict[str, Any]:
    assert name in services(), f"no {name} service"
    (path,) = [p for p in bind_sources(services()[name]) if p.is_file()]
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_collector_receives_otlp_and_exports_traces_and_metrics() -> None:
    config = config_of("otel-collector")
    assert {"grpc", "http"} <= set(config["receivers"]["otlp"]["protocols"]), "otlp receiver without grpc and http"
    pipelines = config["service"]["pipelines"]
    for kind in ("traces", "metrics"):
        assert kind in pipelines, f"no {kind} pipeline"
        assert "otlp" in pipelines[kind]["receivers"], f"the {kind} pipeline does not receive otlp"
        for exporter in pipelines[kind]["exporters"]:
            assert exporter in config["exporters"], f"{kind} exports to {exporter}, which is not configured"
    exporters = [config["exporters"][name] for name in pipelines["traces"]["exporters"]]
    traces_to = {str(exporter.get("endpoint", "")).split(":")[0] for exporter in exporters}
    assert "jaeger" in traces_to, f"traces go to {traces_to}, not jaeger"


def test_prometheus_scrapes_every_worker_and_the_collector() -> None:
    targets: set[tuple[str, str]] = set()
    for job in config_of("prometheus")["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {(host, str(sd["port"])) for host in sd["names"]}
        for static in job.get("static_configs", []):
            targets |= {(target.rsplit(":", 1)[0], target.rsplit(":", 1)[1]) for target in static["targets"]}
    assert {host for host, _ in targets} <= set(services()), f"scrape targets that are no service: {targets}"
    for name, service in workers().items():
        endpoint = environment(service).get("FORGEFLOW_METRICS_PROMETHEUS") or ""
        assert endpoint, f"{name} serves no metrics (FORGEFLOW_METRICS_PROMETHEUS)"
        assert (name, endpoint.rsplit(":", 1)[1]) in targets, f"prometheus does not scrape {name} on {endpoint}"
    collector = config_of("otel-collector")["exporters"]["prometheus"]["endpoint"]
    assert ("otel-collector", collector.rsplit(":", 1)[1]) in targets, "prometheus does not scrape the collector"
