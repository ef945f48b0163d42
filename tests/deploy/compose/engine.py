"""The Docker engine the compose test runs on, and the two things no registry gives it.

Where a daemon already answers (DOCKER_HOST, or /var/run/docker.sock) the test uses it. Otherwise it
starts a private one the way this kind of machine allows (vfs storage, no bridge, no iptables; its own
data root, exec root and socket) under `nice`, so its builds yield to other work, and stops it at the end.

The cache (RNNLAB_COMPOSE_CACHE, default /var/cache/rnnlab-compose-test: outside any checkout, so a CI
clone on the same machine reuses it) holds the Debian base image as a tarball, the torch wheel and the
private daemon's data root. Deleting it is always safe: the next run rebuilds everything (a cold run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("RNNLAB_COMPOSE_CACHE", "/var/cache/rnnlab-compose-test"))
RUN_DIR = Path("/run/rnnlab-compose-test")
BASE_IMAGE = "rnnlab-test/debian-base:bookworm"
# What the Dockerfile's build stage needs from the base: Python 3.11 with venv, and the CA store pip uses.
DEBOOTSTRAP = ["--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm"]
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class EngineError(RuntimeError):
    """The engine or a cached input could not be made ready; the message says which and why."""


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A command under `nice -n 15`: the machine's cores are shared."""
    return subprocess.run(["nice", "-n", "15", *command], text=True, check=False, **kwargs)  # type: ignore[call-overload]


@dataclass
class Engine:
    host: str  # the DOCKER_HOST every docker and docker-compose command gets
    daemon: subprocess.Popen[bytes] | None = None  # ours to stop, when this run started it

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def answers(self) -> bool:
        result = run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=self.env_with_path(),
            capture_output=True,
            timeout=30,
        )
        return result.returncode == 0

    def env_with_path(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env()}

    def stop(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()


def start_engine(deadline_s: float = 120) -> Engine:
    """The machine's daemon if one answers, else a private one started now (ours to stop)."""
    for host in filter(
        None, [os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock", f"unix://{RUN_DIR}/docker.sock"]
    ):
        engine = Engine(host)
        if engine.answers():
            return engine
    for tool in ("dockerd", "docker", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            raise EngineError(
                f"{tool} is not installed: `./run compose-test` installs docker.io, docker-compose "
                "and debootstrap with apt-get"
            )
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    data_root = CACHE / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    # A daemon killed with the machine leaves its pid file, which makes the next one refuse to start.
    (RUN_DIR / "dockerd.pid").unlink(missing_ok=True)
    log = (CACHE / "dockerd.log").open("ab")
    daemon = subprocess.Popen(
        [
            "nice",
            "-n",
            "15",
            "dockerd",
            "--iptables=false",
            "--bridge=none",
            "--storage-driver=vfs",
            f"--data-root={data_root}",
            f"--exec-root={RUN_DIR}/exec",
            f"--pidfile={RUN_DIR}/dockerd.pid",
            f"-H=unix://{RUN_DIR}/docker.sock",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    engine = Engine(f"unix://{RUN_DIR}/docker.sock", daemon)
    deadline = time.monotonic() + deadline_s
    while not engine.answers():
        if daemon.poll() is not None:
            raise EngineError(f"dockerd exited {daemon.returncode}; its log: {CACHE / 'dockerd.log'}")
        if time.monotonic() > deadline:
            engine.stop()
            raise EngineError(
                f"dockerd did not answer within {deadline_s:.0f} s; its log: {CACHE / 'dockerd.log'}"
            )
        time.sleep(1)
    return engine


def ensure_base_image(engine: Engine) -> str:
    """Import the Debian base image, from the cached tarball or from a fresh debootstrap."""
    if (
        run(
            ["docker", "image", "inspect", BASE_IMAGE], env=engine.env_with_path(), capture_output=True
        ).returncode
        == 0
    ):
        return BASE_IMAGE
    tarball = CACHE / "debian-bookworm-base.tar"
    if not tarball.exists():
        root = CACHE / "rootfs.tmp"
        shutil.rmtree(root, ignore_errors=True)  # an interrupted debootstrap leaves half a root
        result = run(
            ["debootstrap", *DEBOOTSTRAP, str(root), DEBIAN_MIRROR], capture_output=True, timeout=1200
        )
        if result.returncode != 0:
            raise EngineError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        # The package cache and lists are half the root and no image needs them.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        result = run(["tar", "-C", str(root), "-cf", str(partial), "."], capture_output=True)
        if result.returncode != 0:
            raise EngineError(f"tar of the debootstrap root failed: {result.stderr}")
        partial.rename(tarball)
        shutil.rmtree(root, ignore_errors=True)
    with tarball.open("rb") as data:
        result = run(
            ["docker", "import", "-", BASE_IMAGE], stdin=data, env=engine.env_with_path(), capture_output=True
        )
    if result.returncode != 0:
        raise EngineError(f"docker import of {tarball} failed: {result.stderr}")
    return BASE_IMAGE


def ensure_torch_wheel(wheels: Path) -> Path:
    """The torch wheel in the build context's wheels/, hard-linked from the cache (downloaded once)."""
    cached = CACHE / "wheels"
    cached.mkdir(parents=True, exist_ok=True)
    found = sorted(cached.glob("torch-2.13.0*.whl"))
    if not found:
        result = run(
            ["pip", "download", "torch==2.13.0", "--no-deps", "-d", str(cached)],
            capture_output=True,
            timeout=1200,
        )
        found = sorted(cached.glob("torch-2.13.0*.whl"))
        if result.returncode != 0 or not found:
            raise EngineError(f"pip download torch==2.13.0 failed:\n{result.stderr[-3000:]}")
    wheel = found[0]
    target = wheels / wheel.name
    if not target.exists():
        try:
            os.link(wheel, target)
        except OSError:  # another file system: a copy does as well
            shutil.copy2(wheel, target)
    return target


def extra_ca_certificates() -> str:
    """The CAs this machine added to Debian's (its TLS proxy's): the build stage must trust them for pip."""
    certificates = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    # As the shell's "$(cat ...)" gives it: no trailing newline (the value is part of the build cache key).
    return "".join(path.read_text() for path in certificates).rstrip("\n")
