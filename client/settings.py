"""Where the server is and which token to send: the only place the client reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "http://127.0.0.1:8000"
# What `rnnlab serve` writes under its data dir when no token is configured (app/api/token.py).
TOKEN_FILE = "api-token"


class ClientSettings(BaseSettings):
    """`RNNLAB_URL`, `RNNLAB_TOKEN` and `RNNLAB_DATA_DIR`, from the environment or a `.env` file, as the
    server reads its own (the server's other `RNNLAB_*` variables are ignored here)."""

    model_config = SettingsConfigDict(env_prefix="RNNLAB_", env_file=".env", extra="ignore")

    # Empty: DEFAULT_URL, where a local `rnnlab serve` listens.
    url: str = ""
    # Empty: the token file a local `rnnlab serve` wrote under `data_dir`.
    token: SecretStr = SecretStr("")
    # The local server's data dir (its `RNNLAB_DATA_DIR`, the same default), only to find that file.
    data_dir: Path = Path("var")

    @property
    def resolved_url(self) -> str:
        return self.url or DEFAULT_URL

    def resolved_token(self) -> str | None:
        """RNNLAB_TOKEN, else the token a local `rnnlab serve` wrote to `<data_dir>/api-token`, else none."""
        if token := self.token.get_secret_value():
            return token
        path = self.data_dir / TOKEN_FILE
        if not path.is_file():
            return None
        return path.read_text().strip() or None
