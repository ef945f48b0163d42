"""The deployment files are valid for the tools that will read them (no Docker engine needed).

docker-compose v1 and the compose-spec JSON schema validate the compose files, hadolint the Dockerfile.
A missing tool is a failure, not a skip: `./run test` installs docker-compose, the test extra the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml", "docker-compose.cpu.yml")
# The overlays a user can pick (see .env.example's COMPOSE_FILE).
STACKS = {
    "base": ["docker-compose.yml"],
    "gpu": ["docker-compose.yml", "docker-compose.gpu.yml"],
    "cpu": ["docker-compose.yml", "docker-compose.cpu.yml"],
}
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
    "RNNLAB_API_TOKENS": "api-secret",
}


def tool(name: str) -> str:
    """Path of a validator: the virtual environment's bin first (pip-installed ones), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `./run test` installs it (see the test) branch of ./run)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without anything compose would interpolate or obey (COMPOSE_*, secrets)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "RNNLAB_", "POSTGRES_", "REDIS_", "TORCH_", "FLOWER_", "DOCKER_"))
    }
    env.update(extra)
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the compose files in an empty directory, so a developer's own .env cannot leak in."""
    for name in (*COMPOSE_FILES, ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def compose(project: Path, files: list[str] | None, env: dict[str, str], *args: str):
    cmd = [tool("docker-compose")]
    for name in files or []:
        cmd += ["-f", name]
    return subprocess.run(
        [*cmd, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def resolved(project: Path, files: list[str] | None, env: dict[str, str]) -> dict:
    result = compose(project, files, env, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


# --- the validators ---


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_docker_compose_v1_accepts_stack(project: Path, stack: str) -> None:
    result = compose(project, STACKS[stack], clean_env(**SECRETS), "config", "-q")
    assert result.returncode == 0, result.stderr


def assert_tool_passes(name: str, *args: str) -> None:
    result = subprocess.run(
        [tool(name), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_files_match_compose_spec_schema() -> None:
    assert_tool_passes("check-jsonschema", "--builtin-schema", "vendor.compose-spec", *COMPOSE_FILES)


def test_dockerfile_passes_hadolint_at_error_level() -> None:
    assert_tool_passes("hadolint", "--failure-threshold", "error", "Dockerfile")


# --- configuration: .env.example and secrets ---


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_missing_secret_stops_compose(project: Path, secret: str) -> None:
    env = clean_env(**{k: v for k, v in SECRETS.items() if k != secret})
    result = compose(project, STACKS["gpu"], env, "config", "-q")
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


def test_env_example_as_is_refuses_to_start(project: Path) -> None:
    """Copied without filling in the passwords, .env.example must not give a stack with empty ones."""
    shutil.copy(project / ".env.example", project / ".env")
    result = compose(project, None, clean_env(), "config", "-q")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def filled_env_file(project: Path, **overrides: str) -> None:
    text = (project / ".env.example").read_text()
    for key, value in {**SECRETS, **overrides}.items():
        text, n = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", text)
        assert n == 1, f"{key} is not set exactly once in .env.example"
    (project / ".env").write_text(text)


def test_env_example_selects_gpu_worker_by_default(project: Path) -> None:
    filled_env_file(project)
    config = resolved(project, None, clean_env())
    devices = config["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    # One GPU, pinned by index (RNNLAB_WORKER_GPU, default 0), and named so in GET /workers.
    assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert config["services"]["worker"]["environment"]["RNNLAB_WORKER_DEVICE"] == "cuda:0"
    assert config["services"]["worker"]["build"]["args"]["TORCH_VARIANT"] == "cu128"
    env = config["services"]["api"]["environment"]
    assert env["RNNLAB_DATABASE_URL"] == "postgresql+psycopg://rnnlab:pg-secret@postgres:5432/rnnlab"
    assert env["RNNLAB_BROKER_URL"] == "redis://:redis-secret@redis:6379/0"
    assert env["RNNLAB_API_TOKENS"] == "api-secret" and env["RNNLAB_PROTECT_READS"] == "false"


def test_only_the_api_gets_the_api_tokens(gpu_stack: dict) -> None:
    assert [n for n, s in gpu_stack.items() if "RNNLAB_API_TOKENS" in s.get("environment", {})] == ["api"]


def test_cpu_overlay_has_no_device_reservation(project: Path) -> None:
    filled_env_file(project, COMPOSE_FILE="docker-compose.yml:docker-compose.cpu.yml")
    worker = resolved(project, None, clean_env())["services"]["worker"]
    assert "deploy" not in worker
    assert worker["build"]["args"]["TORCH_VARIANT"] == "cpu"


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = set()
    for name in COMPOSE_FILES:
        used |= set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (ROOT / name).read_text()))
    documented = set(re.findall(r"(?m)^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text()))
    assert used - documented == set()


def test_env_example_has_no_secret_values() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if re.search(r"PASSWORD|SECRET|TOKEN", key) and not key.startswith("#"):
            assert value == "", f"{key} must be empty in .env.example"


# --- the topology the issue asks for ---


@pytest.fixture
def gpu_stack(project: Path) -> dict:
    return resolved(project, STACKS["gpu"], clean_env(**SECRETS))["services"]


def test_api_and_worker_wait_for_migrations_and_healthy_stores(gpu_stack: dict) -> None:
    assert gpu_stack["migrate"]["command"] == ["rnnlab", "migrate"]
    for name in ("api", "worker"):
        depends = gpu_stack[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert gpu_stack["migrate"]["restart"] == "no"


def test_stores_are_persistent_and_health_checked(gpu_stack: dict) -> None:
    assert "pg_isready" in " ".join(gpu_stack["postgres"]["healthcheck"]["test"])
    assert gpu_stack["postgres"]["volumes"][0].startswith("postgres-data:")
    assert "redis-cli ping" in " ".join(gpu_stack["redis"]["healthcheck"]["test"])
    assert "--appendonly yes" in " ".join(gpu_stack["redis"]["command"])
    assert gpu_stack["redis"]["volumes"][0].startswith("redis-data:")


def test_worker_runs_one_job_and_has_time_to_checkpoint(gpu_stack: dict) -> None:
    worker = gpu_stack["worker"]
    # `rnnlab worker` is always a solo pool with prefetch 1: one job at a time, SIGTERM in the job's process.
    assert worker["command"] == ["rnnlab", "worker"]
    assert worker["init"] is True
    grace = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", worker["stop_grace_period"])
    assert grace is not None and int(grace[1] or 0) * 60 + int(grace[2] or 0) >= 60


def test_api_publishes_port_8000(gpu_stack: dict) -> None:
    assert gpu_stack["api"]["command"] == ["rnnlab", "api", "--host", "0.0.0.0", "--port", "8000"]
    # docker-compose v1 resolves the short syntax to HOST_IP:HOST_PORT:CONTAINER_PORT/PROTOCOL.
    assert gpu_stack["api"]["ports"] == ["127.0.0.1:8000:8000/tcp"]


def test_flower_is_optional(project: Path) -> None:
    raw = yaml.safe_load((project / "docker-compose.yml").read_text())
    assert raw["services"]["flower"]["profiles"] == ["monitoring"]
    assert all("profiles" not in s for n, s in raw["services"].items() if n != "flower")


# --- the Dockerfile ---


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert len(stages) >= 2, "multi-stage build"
    assert "python:3.11-slim" in text
    assert re.search(r"(?m)^ARG TORCH_VARIANT=cu128$", text)
    assert 'download.pytorch.org/whl/${TORCH_VARIANT}" "torch==2.13.0"' in text
    # Dependencies are installed from pyproject.toml alone, before the source is copied in.
    assert (
        text.index("COPY pyproject.toml")
        < text.index("-r /tmp/requirements.txt")
        < text.index("COPY --from=source")
    )
    # A `# syntax=` line makes BuildKit pull its front end from a registry: an air-gapped build cannot.
    assert not re.search(r"(?m)^# *syntax=", text)
    user = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    healthcheck = re.search(r"(?ms)^HEALTHCHECK.*?CMD (\[.*?\])$", text)
    assert healthcheck and "urllib" in healthcheck[1] and "/health" in healthcheck[1]
    assert "curl" not in healthcheck[1]


def test_the_image_copies_every_package_that_pyproject_installs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [name.rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert "client" in packages
    missing = [name for name in packages if not re.search(rf"(?m)^COPY {name} /app/{name}$", text)]
    assert not missing, f"the image would install without {missing}"


BUILD_ARGS = (
    "BASE_IMAGE",
    "TORCH_VARIANT",
    "TORCH_WHEELS",
    "PIP_INDEX_URL",
    "EXTRA_CA_CERT",
    "RNNLAB_EXTRAS",
)


def test_build_arguments_are_declared_documented_and_off_by_default() -> None:
    text = (ROOT / "Dockerfile").read_text()
    header = text[: text.index("ARG BASE_IMAGE")]
    for name in BUILD_ARGS:
        assert re.search(rf"(?m)^ARG {name}=", text), f"ARG {name} has no default"
        assert f"#   {name}" in header, f"{name} is not explained at the top of the Dockerfile"
    # The online defaults: what users with internet got before these arguments existed.
    assert re.search(r"(?m)^ARG BASE_IMAGE=python:3.11-slim-bookworm$", text)
    assert re.search(r'(?m)^ARG TORCH_WHEELS=""$', text) and re.search(r'(?m)^ARG EXTRA_CA_CERT=""$', text)


def test_compose_passes_the_build_arguments_to_every_rnnlab_build(gpu_stack: dict) -> None:
    for name in ("migrate", "api", "worker", "flower"):
        args = gpu_stack[name]["build"]["args"]
        assert {"BASE_IMAGE", "TORCH_WHEELS", "PIP_INDEX_URL", "EXTRA_CA_CERT"} <= set(args), name
        assert args["BASE_IMAGE"] == "python:3.11-slim-bookworm" and args["TORCH_WHEELS"] == ""
    assert gpu_stack["api"]["build"]["args"]["TORCH_VARIANT"] == "cpu"


def test_flower_runs_from_the_api_image_on_loopback(gpu_stack: dict) -> None:
    flower = gpu_stack["flower"]
    assert flower["image"] == gpu_stack["api"]["image"] == "rnnlab:cpu"
    assert flower["build"]["args"]["RNNLAB_EXTRAS"] == "monitoring"
    assert flower["ports"] == ["127.0.0.1:5555:5555/tcp"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("flower") for d in pyproject["project"]["optional-dependencies"]["monitoring"])


def test_cpu_overlay_worker_builds_the_api_image(project: Path) -> None:
    filled_env_file(project, COMPOSE_FILE="docker-compose.yml:docker-compose.cpu.yml")
    services = resolved(project, None, clean_env())["services"]
    # Same tag and same arguments: building both must give one image, not two that overwrite each other.
    assert services["worker"]["image"] == services["api"]["image"]
    assert services["worker"]["build"]["args"] == services["api"]["build"]["args"]
