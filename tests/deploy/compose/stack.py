"""One compose project under test: its commands, its containers, bounded waits and teardown."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.deploy.compose.engine import Engine

T = TypeVar("T")
# What compose and the Dockerfile read from the environment; the user's own values must not leak in.
FOREIGN = (
    "COMPOSE_",
    "RNNLAB_",
    "POSTGRES_",
    "REDIS_",
    "TORCH_",
    "FLOWER_",
    "DOCKER_",
    "BASE_IMAGE",
    "PIP_INDEX_URL",
    "EXTRA_CA_CERT",
)


class CheckFailed(AssertionError):
    """A check of the compose test failed; the message says what was expected and what was seen."""


def wait_for(what: str, check: Callable[[], T | None], timeout: float, context: Callable[[], str] = str) -> T:
    """Poll `check` until it returns something truthy; at the deadline fail naming `what`, with context."""
    deadline = time.monotonic() + timeout
    interval = 0.2
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}\n{context()}")
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)


@dataclass
class Stack:
    engine: Engine
    root: Path  # the project directory: the checkout, where docker-compose.yml is
    files: list[Path]
    env_file: Path
    project: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env.update(self.engine.env(), COMPOSE_PROJECT_NAME=self.project, **self.extra_env)
        return env

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "nice",
            "-n",
            "15",
            "docker-compose",
            "--project-name",
            self.project,
            "--env-file",
            str(self.env_file),
        ]
        for path in self.files:
            command += ["-f", str(path)]
        try:
            result = subprocess.run(
                [*command, *args],
                cwd=self.root,
                env=self.env(),
                text=True,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(
                f"docker-compose {' '.join(args)} ran past {timeout:.0f} s\n{self.logs()}"
            ) from exc
        if check and result.returncode != 0:
            raise CheckFailed(
                f"docker-compose {' '.join(args)} exited {result.returncode}\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.logs()}"
            )
        return result

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            ["docker", *args], env=self.env(), text=True, capture_output=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise CheckFailed(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def service_image(self, service: str) -> str:
        """The image a service runs, as compose resolves it."""
        config = self.compose("--profile", "monitoring", "config", timeout=120).stdout
        return str(yaml.safe_load(config)["services"][service]["image"])

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers, running or not, oldest first."""
        out = self.docker(
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        )
        ids = out.split()
        return sorted(ids, key=lambda c: self.inspect(c)["Created"])

    def container(self, service: str) -> str:
        ids = self.containers(service)
        if len(ids) != 1:
            raise CheckFailed(f"expected one {service} container, found {len(ids)}\n{self.ps()}")
        return ids[0]

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", container))[0]

    def state(self, service: str) -> dict[str, Any]:
        return self.inspect(self.container(service))["State"]

    def ps(self) -> str:
        return self.compose("ps", "-a", check=False, timeout=60).stdout

    def logs(self, tail: int = 40) -> str:
        try:
            result = subprocess.run(
                [
                    "docker-compose",
                    "--project-name",
                    self.project,
                    "--env-file",
                    str(self.env_file),
                    *sum((["-f", str(p)] for p in self.files), []),
                    "--profile",
                    "monitoring",
                    "logs",
                    "--no-color",
                    f"--tail={tail}",
                ],
                cwd=self.root,
                env=self.env(),
                text=True,
                capture_output=True,
                timeout=60,
                check=False,
            )
            return (
                f"----- docker-compose ps -----\n{self.ps()}\n----- logs (last {tail} lines each) -----\n"
                + result.stdout
            )
        except subprocess.TimeoutExpired:
            return "(docker-compose logs timed out)"

    def remove_everything(self) -> None:
        """Containers, volumes and networks of this project, whatever state an earlier run left them in."""
        self.compose(
            "--profile",
            "monitoring",
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "20",
            check=False,
            timeout=300,
        )
        label = f"label=com.docker.compose.project={self.project}"
        leftovers = self.docker("ps", "-a", "-q", "--filter", label, check=False).split()
        if leftovers:
            self.docker("rm", "-f", "-v", *leftovers, check=False)
        volumes = self.docker("volume", "ls", "-q", "--filter", label, check=False).split()
        if volumes:
            self.docker("volume", "rm", "-f", *volumes, check=False)
