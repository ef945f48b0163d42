"""One settings object for the API, the worker and the CLI (env vars `RNNLAB_*` or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Per job: checkpoints kept besides the best one (the worker's default too when called without settings).
DEFAULT_KEEP_CHECKPOINTS = 5


class Settings(BaseSettings):
    """Empty `database_url` / `broker_url` mean the embedded default: SQLite and a filesystem broker."""

    model_config = SettingsConfigDict(env_prefix="RNNLAB_", env_file=".env", extra="ignore")

    # Root of everything the embedded default writes: the SQLite file and the broker folders.
    data_dir: Path = Path("var")
    # e.g. postgresql+psycopg://user@host/db; empty: sqlite:///<data_dir>/rnnlab.db
    database_url: str = ""
    # e.g. redis://host:6379/0; empty: kombu's filesystem:// transport under <data_dir>/broker
    broker_url: str = ""
    # The CPU workers' queue (and every job's before routing by device existed).
    queue: str = Field(
        "rnnlab", pattern=r"^[A-Za-z0-9_-]+$", description="Celery queue for CPU training jobs"
    )
    # The GPU workers' queue; empty: `<queue>-gpu`. Jobs go to one or the other by their `device`
    # (app/services/routing.py).
    gpu_queue: str = Field("", pattern=r"^([A-Za-z0-9_-]+)?$")
    # What a worker declares about itself (`rnnlab worker --queue --device`): the queue it consumes,
    # `cpu` or `gpu` (empty: `gpu` when its device is a CUDA device), and the device it trains on as
    # it reports it (empty: `cuda:0` when this process sees a GPU, else `cpu`; CUDA_VISIBLE_DEVICES
    # pins which physical GPU is this process's `cuda:0`).
    worker_queue: Literal["", "cpu", "gpu"] = ""
    worker_device: str = Field("", pattern=r"^(cpu|cuda(:[0-9]+)?)?$")
    # Redis only: seconds a delivered, unacknowledged task stays invisible before Redis hands it to
    # another worker. The lease (`lease_seconds`) is what keeps a job from running twice; this only
    # bounds how soon a task whose worker vanished is delivered again, so it is long (Celery's 1 h,
    # set explicitly) rather than longer than the longest job.
    broker_visibility_timeout: float = Field(3600.0, gt=0)
    # Seconds between polls of the filesystem broker (it has no push notifications).
    broker_polling_interval: float = Field(0.5, gt=0)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)
    # Largest grid one POST /experiments may queue (each point is a job).
    max_experiment_jobs: int = Field(200, ge=1)
    model_cache_size: int = Field(4, ge=1, description="loaded checkpoints kept by the API for generation")
    # Streams one checkpoint's engine steps together, and requests that may wait for a free slot on
    # top of them; a request beyond both gets 429.
    generation_max_batch: int = Field(64, ge=1)
    generation_max_waiting: int = Field(256, ge=0)
    # The least time between two events of one /generate/stream (its first characters and its end go
    # at once): what arrives meanwhile goes in the next event (vLLM's stream interval, in time).
    generation_stream_interval_ms: float = Field(10.0, ge=0, le=1000)
    # False: step the decode batches with PyTorch ops even where the native step (models/native) is
    # built; both give the same texts, so this is for comparisons and debugging.
    native_decode: bool = True
    # PyTorch threads of the API process and of a worker; None: a share of the cores (app/runtime/threads.py).
    api_threads: int | None = Field(None, ge=1)
    worker_threads: int | None = Field(None, ge=1)
    # A running job whose worker has not written a heartbeat for this long may be claimed again.
    lease_seconds: float = Field(120.0, gt=0)
    # How often every worker sweeps (re-sends stale and unsent jobs) and writes its own heartbeat;
    # empty: a quarter of the lease, so a live worker beats several times within it.
    sweep_seconds: float | None = Field(None, gt=0)
    # Attempts a job gets whose worker dies (killed, out of memory); then it fails instead of re-queuing.
    max_attempts: int = Field(3, ge=1)
    # How long `rnnlab api | serve | worker | migrate` keep trying to reach the database and the broker
    # at start before exiting with one line naming the setting and host (app/runtime/preflight.py).
    startup_wait_seconds: float = Field(10.0, ge=0, le=600)
    sqlite_busy_timeout_s: float = Field(30.0, gt=0)
    # The worker touches this file once it consumes tasks (used by tests and container health checks).
    worker_ready_file: Path | None = None

    # Comma-separated bearer tokens the API accepts (several, so a token can be rotated without downtime).
    # Empty: `rnnlab serve` / `rnnlab api` use the token in <data_dir>/api-token, made at first start.
    api_tokens: SecretStr = SecretStr("")
    # True: every GET needs the token too, except health, readiness, metrics and the API docs.
    protect_reads: bool = False
    # POST /train answers 429 while this many jobs are queued.
    max_queued_jobs: int = Field(100, ge=1)
    # Per token (per client address for the open GET /generate): writes and generations per minute,
    # and how many may come at once (token bucket).
    rate_limit_per_minute: float = Field(600.0, gt=0)
    rate_limit_burst: int = Field(120, ge=1)
    # Per job: checkpoints kept besides the best one; older ones are deleted as new ones are written.
    keep_checkpoints: int = Field(DEFAULT_KEEP_CHECKPOINTS, ge=1)
    # Peak training memory a job may need (POST /train refuses larger ones); None: half of this
    # machine's memory.
    worker_memory_bytes: int | None = Field(None, ge=1)

    # Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the API believes
    # (uvicorn's `forwarded_allow_ips`: comma-separated IPs or CIDR networks, `*` for all). Anonymous
    # callers are rate-limited per address, so a header from anyone else is ignored: a client cannot
    # pick its own bucket. 127.0.0.1 is uvicorn's default: a proxy on the same host.
    forwarded_allow_ips: str = Field("127.0.0.1", pattern=r"^[0-9A-Fa-f:./,* ]+$")

    # Sessions (POST /sessions): one is deleted once unused for this long; a token holds at most
    # `max_sessions_per_token` at a time (429 beyond).
    session_idle_seconds: float = Field(3600.0, gt=0)
    max_sessions_per_token: int = Field(64, ge=1)
    # When a session's change is on disk (app/services/session_writer.py): `always` before its answer;
    # `everysec` within a second of it (a killed process loses nothing; a power cut, the last second).
    session_fsync: Literal["everysec", "always"] = "everysec"

    # Defaults of `rnnlab serve | api`'s --host and --port.
    host: str = "127.0.0.1"
    port: int = 8000
    # Log lines on stderr (app/observability/logs.py): `text` for a terminal, `json` for a collector;
    # the level is a `logging` name (DEBUG, INFO, WARNING, ...), which `logging` itself checks.
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("log_format", mode="before")
    @classmethod
    def _known_log_format(cls, value: Any) -> Any:
        # Named by its variable: this is the message an operator sees when the process refuses to start.
        fmt = str(value).strip().lower()
        if fmt not in ("text", "json"):
            raise ValueError(f"RNNLAB_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
        return fmt

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> str:
        return str(value).strip().upper()

    @property
    def api_token_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.api_tokens.get_secret_value().split(",") if t.strip())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'rnnlab.db').resolve()}"

    @property
    def resolved_sweep_seconds(self) -> float:
        return self.sweep_seconds or self.lease_seconds / 4

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def resolved_gpu_queue(self) -> str:
        return self.gpu_queue or f"{self.queue}-gpu"

    def queue_of(self, kind: Literal["cpu", "gpu"]) -> str:
        """The queue of the CPU or the GPU workers."""
        return self.resolved_gpu_queue if kind == "gpu" else self.queue


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
