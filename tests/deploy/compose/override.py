"""The compose test's override file, derived from docker-compose.yml by one documented transformation.

The test runs the real docker-compose.yml with the CPU overlay; this third file changes only what the air
gap and this machine force, and every value it writes is computed from docker-compose.yml itself, so the
stack under test cannot drift from the user's:

- images: `postgres` and `redis` build the test's own images from the Debian base (tests/deploy/images),
  since postgres:16-bookworm and redis:7-bookworm cannot be pulled; the rnnlab builds get their air-gapped
  build arguments from the environment (BASE_IMAGE, TORCH_WHEELS...: see .env.example), not from here;
- host networking: every service `network_mode: host` and every build `network: host` (no bridge here);
- the ports and addresses that follow: each service listens on 127.0.0.1 and a port of its own (the
  machine's PostgreSQL and Redis already hold 5432 and 6379), so `@postgres:5432` and `@redis:6379` in
  the connection URLs, `--host 0.0.0.0 --port 8000` in the API's command, Flower's `--address`/`--port`,
  Redis's port and the health checks that name a port are rewritten to match.

- one thing host networking forces on the worker: `pid: host`. A worker names itself hostname:pid; on
  the host's network every replica has the host's hostname, and in a PID namespace of its own every
  replica's worker has the same small pid, so two replicas would share one name (and one heartbeat row).

And one transformation an override cannot make: under host networking docker-compose refuses `ports:`
("host" network_mode is incompatible with port_bindings), and v1 cannot delete a key in an override. So
`without_ports` takes the three files as `docker-compose config` merges them (interpolated, `$$` kept
escaped; the file holds the run's generated passwords, so it is written 0600 under var/) and drops `ports`
from every service; the stack runs from that one merged file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "tests" / "deploy" / "images"
# The services that run rnnlab's image: their build gets host networking and their URLs the new ports.
RNNLAB_SERVICES = ("migrate", "api", "worker", "flower")


@dataclass(frozen=True)
class Ports:
    postgres: int
    redis: int
    api: int
    flower: int


def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written: anchors merged, ${...} not yet interpolated (compose does that)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _addresses(value: str, ports: Ports) -> str:
    value = value.replace("@postgres:5432/", f"@127.0.0.1:{ports.postgres}/")
    return value.replace("@redis:6379/", f"@127.0.0.1:{ports.redis}/")


def _replace_option(command: list[str], option: str, value: str) -> list[str]:
    """`--option value` or `--option=value` in a command list, with the value swapped; it must be there."""
    out = list(command)
    for i, word in enumerate(out):
        if word == option:
            out[i + 1] = value
            return out
        if word.startswith(option + "="):
            out[i] = f"{option}={value}"
            return out
    raise ValueError(f"{option} is not in {command}: docker-compose.yml changed, update the override")


def _test_image(name: str, base_image: str) -> dict[str, Any]:
    return {
        "image": f"rnnlab-test/{name}:bookworm",
        "build": {
            "context": str(IMAGES),
            "dockerfile": f"{name}.Dockerfile",
            "network": "host",
            "args": {"BASE_IMAGE": base_image},
        },
    }


def derive(ports: Ports, base_image: str) -> dict[str, Any]:
    services = raw_compose()["services"]
    out: dict[str, dict[str, Any]] = {name: {"network_mode": "host"} for name in services}

    out["postgres"].update(_test_image("postgres", base_image))
    # pg_isready in the health check and the server both read PGPORT.
    out["postgres"]["environment"] = {"PGPORT": str(ports.postgres)}

    redis = services["redis"]
    out["redis"].update(_test_image("redis", base_image))
    shell, flag, script = redis["command"]
    out["redis"]["command"] = [shell, flag, f"{script} --port {ports.redis} --bind 127.0.0.1"]
    out["redis"]["healthcheck"] = {
        "test": [
            re.sub(r"\bredis-cli\b", f"redis-cli -p {ports.redis}", w) for w in redis["healthcheck"]["test"]
        ]
    }

    for name in RNNLAB_SERVICES:
        service = services[name]
        out[name]["build"] = {"network": "host"}
        # Only the variables whose value changes: the rest comes from docker-compose.yml as it is.
        environment = {k: _addresses(str(v), ports) for k, v in service["environment"].items()}
        out[name]["environment"] = {k: v for k, v in environment.items() if v != service["environment"][k]}

    out["worker"]["pid"] = "host"

    api = _replace_option(services["api"]["command"], "--host", "127.0.0.1")
    out["api"]["command"] = _replace_option(api, "--port", str(ports.api))
    # The image's HEALTHCHECK asks port 8000; the same check, at the API's port.
    out["api"]["healthcheck"] = {
        "test": [
            "CMD",
            "python",
            "-c",
            "import urllib.request; "
            f"urllib.request.urlopen('http://127.0.0.1:{ports.api}/health', timeout=4)",
        ]
    }

    flower = _replace_option(services["flower"]["command"], "--address", "127.0.0.1")
    out["flower"]["command"] = _replace_option(flower, "--port", str(ports.flower))
    out["flower"]["healthcheck"] = {
        "test": [
            w.replace("127.0.0.1:5555", f"127.0.0.1:{ports.flower}")
            for w in services["flower"]["healthcheck"]["test"]
        ]
    }
    return {"services": out}


def write(path: Path, ports: Ports, base_image: str) -> Path:
    path.write_text(
        "# Derived from docker-compose.yml by tests/deploy/compose/override.py: do not edit, see there.\n"
        + yaml.safe_dump(derive(ports, base_image), sort_keys=False)
    )
    return path


def without_ports(merged_config: str) -> str:
    """`docker-compose config --no-interpolate` output with every service's `ports` removed (see above)."""
    config = yaml.safe_load(merged_config)
    for service in config["services"].values():
        service.pop("ports", None)
    return "# Derived by tests/deploy/compose/override.py: do not edit.\n" + yaml.safe_dump(
        config, sort_keys=False
    )
