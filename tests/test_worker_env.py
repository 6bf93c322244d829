"""What a sandbox worker may hold: the secret check, the child's environment, the key ring by file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import SECRET_VARIABLES, Settings, secrets_in
from payloads.codec import CodecError, new_key
from payloads.converter import codec, key_ring, with_key_ring_read
from starter.sandbox_process import WORKER_MODULE, sandbox_environment, sandbox_refusal

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, []),
        ({"PATH": "/bin", "GPG_KEY": "A035C8C19219BA821ECEA86B64E628F8D684696D"}, []),  # the python image's own
        ({"GITHUB_TOKEN": "ghp_x"}, ["GITHUB_TOKEN"]),
        ({"GITHUB_TOKEN": "", "ANTHROPIC_API_KEY": "  "}, []),  # docker-compose's unset variables
        ({"FORGEFLOW_CODEC_KEYS_FILE": "/run/secrets/ring"}, []),  # a path, not the ring
        ({"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3"}, []),  # the store's: needed
        (
            {name: "secret-value" for name in SECRET_VARIABLES},
            list(SECRET_VARIABLES),
        ),
        ({"FORGEFLOW_CODEC_KEYS": "{}", "PERPLEXITY_API_KEY": "p"}, ["PERPLEXITY_API_KEY", "FORGEFLOW_CODEC_KEYS"]),
    ],
)
def test_secrets_in_the_environment(env: dict[str, str], named: list[str]) -> None:
    assert secrets_in(env) == named
    refusal = sandbox_refusal(env, "forgeflow-sandbox")
    if not named:
        assert refusal is None
        return
    assert refusal is not None
    assert all(name in refusal for name in named)
    assert "secret-value" not in refusal and "FORGEFLOW_CODEC_KEYS_FILE" in refusal


def test_every_secret_setting_is_on_the_list() -> None:
    """A new SecretStr setting must be added to SECRET_VARIABLES, or sandbox workers would accept it."""
    secret_aliases = {f.alias for f in Settings.model_fields.values() if "SecretStr" in str(f.annotation)}
    assert secret_aliases <= set(SECRET_VARIABLES)


# An S3 object store's settings: the sandbox worker reads the overlays' contents from it.
STORAGE_ENV = {
    "AWS_ENDPOINT_URL": "http://minio:9000",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "session-token-value",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
}
PARENT_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/var/tmp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
    "OTEL_EXPORTER_OTLP_HEADERS": "api-key=otel-secret",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=otel-secret",
    "FORGEFLOW_METRICS_PROMETHEUS": "0.0.0.0:9464",
    "GITHUB_APP_ID": "12",
    **STORAGE_ENV,
    "AWS_PROFILE": "ops",  # an allowlist, not a prefix: only the variables the object store reads
    "FORGEFLOW_SANDBOX_MEMORY_MB": "999",  # from the environment: the settings' value wins
    **{name: "secret-value" for name in SECRET_VARIABLES},
}


def test_the_child_environment_is_an_allowlist_plus_the_settings() -> None:
    settings = Settings.model_validate(
        {
            "TEMPORAL_ADDRESS": "temporal:7233",
            "FORGEFLOW_DATA_DIR": "/data",
            "FORGEFLOW_STORAGE_URL": "s3://runs/forgeflow",
            "FORGEFLOW_SANDBOX_MEMORY_MB": 512,
            "ANTHROPIC_API_KEY": "sk-ant-in-settings",
            "FORGEFLOW_CODEC_KEYS": "{}",
            "FORGEFLOW_METRICS_PROMETHEUS": "0.0.0.0:9464",
        }
    ).model_copy(update={"sandbox_weak_limits": True})
    env = sandbox_environment(settings, PARENT_ENV)
    assert {k: env[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OTEL_EXPORTER_OTLP_ENDPOINT")} == {
        k: PARENT_ENV[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233" and env["FORGEFLOW_DATA_DIR"] == "/data"
    assert env["FORGEFLOW_SANDBOX_MEMORY_MB"] == "512" and env["FORGEFLOW_SANDBOX_WEAK_LIMITS"] == "true"
    assert env["FORGEFLOW_STORAGE_URL"] == "s3://runs/forgeflow"
    assert {k: env[k] for k in STORAGE_ENV} == STORAGE_ENV
    assert secrets_in(env) == []
    for absent in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "FORGEFLOW_METRICS_PROMETHEUS"):
        assert absent not in env
    assert "AWS_PROFILE" not in env and "GITHUB_APP_ID" not in env
    assert not any("secret" in value for value in env.values())


def test_the_child_reads_the_settings_back_from_its_environment() -> None:
    """Values set in code (the demo's weak limits) reach a real process through the environment."""
    settings = Settings.model_validate(
        {
            "FORGEFLOW_DATA_DIR": "/srv/ff",
            "FORGEFLOW_STORAGE_URL": "s3://runs/ff",
            "FORGEFLOW_SANDBOX_REGISTRIES": ["pypi.org:443"],
        }
    ).model_copy(update={"sandbox_weak_limits": True, "sandbox_cpu_factor": 3.5, "allow_unsandboxed_tests": True})
    env = sandbox_environment(settings, {"PATH": os.environ["PATH"]})
    dump = "from config.settings import Settings; print(Settings().model_dump_json(by_alias=True))"
    done = subprocess.run([sys.executable, "-c", dump], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    seen = Settings.model_validate_json(done.stdout)
    for name in ("data_dir", "storage_url", "task_queue", "payload_threshold_kb", "allow_unsandboxed_tests"):
        assert getattr(seen, name) == getattr(settings, name)
    for name in Settings.model_fields:
        if name.startswith("sandbox_"):
            assert getattr(seen, name) == getattr(settings, name), name


def _ring() -> str:
    return json.dumps({"k1": new_key()})


def test_the_key_ring_from_a_file(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    ring.write_text(_ring() + "\n")
    settings = Settings.model_validate({"FORGEFLOW_CODEC_KEYS_FILE": str(ring)})
    assert key_ring(settings) == ring.read_text().strip()
    assert codec(settings) is not None and codec(settings).active == "k1"  # type: ignore[union-attr]


def test_a_piped_key_ring_serves_every_client_of_the_process() -> None:
    """A pipe holds the ring for one read; the worker reads it at start-up for all its clients."""
    text = _ring()
    read, write = os.pipe()
    os.write(write, text.encode())
    os.close(write)
    try:
        settings = with_key_ring_read(Settings.model_validate({"FORGEFLOW_CODEC_KEYS_FILE": f"/dev/fd/{read}"}))
        assert key_ring(settings) == key_ring(settings) == text
    finally:
        os.close(read)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"FORGEFLOW_CODEC_KEYS_FILE": ""}, None),  # docker-compose's unset variable
        ({"FORGEFLOW_CODEC_KEYS": ""}, None),
    ],
)
def test_empty_key_ring_settings_mean_no_codec(values: dict[str, str], expected: None) -> None:
    assert key_ring(Settings.model_validate(values)) is expected


def test_an_empty_key_file_means_no_codec(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")  # a docker secret made from an unset variable
    assert key_ring(Settings.model_validate({"FORGEFLOW_CODEC_KEYS_FILE": str(empty)})) is None


def test_the_key_ring_is_set_once(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    ring.write_text(_ring())
    both = Settings.model_validate({"FORGEFLOW_CODEC_KEYS_FILE": str(ring)}).model_copy(
        update={"codec_keys": SecretStr(_ring())}
    )
    with pytest.raises(CodecError, match="not both"):
        key_ring(both)
    with pytest.raises(CodecError, match=r"missing\.json cannot be read"):
        key_ring(Settings.model_validate({"FORGEFLOW_CODEC_KEYS_FILE": str(tmp_path / "missing.json")}))


def test_a_sandbox_worker_refuses_a_secret_in_its_environment(tmp_path: Path) -> None:
    token = "ghp_" + "7" * 36
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FORGEFLOW_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # never reached: it refuses first
        "GITHUB_TOKEN": token,
    }
    done = subprocess.run(
        [sys.executable, "-m", WORKER_MODULE, "--queue", "forgeflow-sandbox"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "GITHUB_TOKEN" in done.stderr and "FORGEFLOW_CODEC_KEYS_FILE" in done.stderr
    assert token not in done.stdout + done.stderr
