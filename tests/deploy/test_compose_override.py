"""The compose test's override (tests/deploy/compose/override.py) changes only what the air gap forces.

No Docker engine needed: the derived file is checked against docker-compose.yml, and docker-compose v1
validates the stack it makes with the CPU overlay.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.compose import checks, override
from tests.deploy.test_static import SECRETS, clean_env, tool

ROOT = override.ROOT
BASE = "rnnlab-test/debian-base:bookworm"
PORTS = override.Ports(postgres=25432, redis=26379, api=28000, flower=25555)


def derived() -> dict[str, Any]:
    return override.derive(PORTS, BASE)["services"]


def test_override_touches_only_images_builds_networking_and_addresses() -> None:
    allowed = {"network_mode", "image", "build", "environment", "command", "healthcheck"}
    base = override.raw_compose()["services"]
    assert set(derived()) == set(base)
    for name, service in derived().items():
        # pid: host only where host networking makes worker names collide (see override.py).
        assert set(service) <= allowed | ({"pid"} if name == "worker" else set()), (
            name,
            set(service) - allowed,
        )
        assert service["network_mode"] == "host"
        assert service["build"]["network"] == "host"
    # The rnnlab services keep their images and build arguments: those come from .env (BASE_IMAGE...).
    for name in override.RNNLAB_SERVICES:
        assert set(derived()[name]["build"]) == {"network"}
        assert "image" not in derived()[name]


def test_only_the_store_addresses_change_in_the_urls() -> None:
    base = override.raw_compose()["services"]
    for name in override.RNNLAB_SERVICES:
        changed = derived()[name]["environment"]
        assert changed, name
        for key, value in changed.items():
            before = base[name]["environment"][key]
            restored = value.replace(f"@127.0.0.1:{PORTS.postgres}/", "@postgres:5432/")
            assert restored.replace(f"@127.0.0.1:{PORTS.redis}/", "@redis:6379/") == before


def test_commands_change_only_their_listen_address_and_port() -> None:
    base = override.raw_compose()["services"]
    api = derived()["api"]["command"]
    assert [w for w in api if w not in ("127.0.0.1", str(PORTS.api))] == [
        w for w in base["api"]["command"] if w not in ("0.0.0.0", "8000")
    ]
    redis = derived()["redis"]["command"]
    assert redis[2] == base["redis"]["command"][2] + f" --port {PORTS.redis} --bind 127.0.0.1"
    assert derived()["flower"]["command"] == [
        "celery",
        "flower",
        "--address=127.0.0.1",
        f"--port={PORTS.flower}",
    ]


def test_docker_compose_accepts_the_test_stack(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    values = checks.env_file(env_file, BASE)
    assert values["TORCH_WHEELS"] == "local"
    overlay = override.write(tmp_path / "override.yml", PORTS, BASE)
    command = [tool("docker-compose"), "--project-name", "t", "--env-file", str(env_file)]
    for path in (ROOT / "docker-compose.yml", ROOT / "docker-compose.cpu.yml", overlay):
        command += ["-f", str(path)]
    result = subprocess.run(
        [*command, "--profile", "monitoring", "config"],
        cwd=ROOT,
        env=clean_env(**SECRETS),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["api"]["build"]["args"]["BASE_IMAGE"] == BASE
    assert services["worker"]["image"] == services["api"]["image"] == "rnnlab:cpu"
    assert "deploy" not in services["worker"]
    assert services["postgres"]["image"] == "rnnlab-test/postgres:bookworm"
