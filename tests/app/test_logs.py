"""app/observability/logs.py: the text and JSON log formats, and the settings that choose them."""

from __future__ import annotations

import json
import logging

import pytest

from app import observability
from app.core.settings import Settings
from app.observability import logs


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("rnnlab.test", logging.INFO, __file__, 1, "step %d done", (7,), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_formatter_has_job_id_step_and_level() -> None:
    line = logs.JsonFormatter().format(record(job_id=3, step=7, loss=0.5))
    payload = json.loads(line)
    assert "\n" not in line
    assert payload["level"] == "INFO"
    assert payload["message"] == "step 7 done"
    assert (payload["job_id"], payload["step"], payload["loss"]) == (3, 7, 0.5)


def test_json_formatter_nulls_absent_context() -> None:
    payload = json.loads(logs.JsonFormatter().format(record()))
    assert payload["job_id"] is None and payload["step"] is None


def test_text_formatter_shows_context_only_when_present() -> None:
    formatter = logs.TextFormatter()
    assert "INFO rnnlab.test [job_id=3 step=7] step 7 done" in formatter.format(record(job_id=3, step=7))
    assert "INFO rnnlab.test step 7 done" in formatter.format(record())


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_configure_logging_json_covers_uvicorn_and_celery(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RNNLAB_LOG_FORMAT", "json")
    observability.configure_logging(Settings())
    with observability.log_context(job_id=11):
        logging.getLogger("celery.worker").warning("lost", extra={"step": 40})
    logging.getLogger("uvicorn.access").info("GET /health")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["logger"], x["level"], x["job_id"], x["step"]) for x in lines] == [
        ("celery.worker", "WARNING", 11, 40),
        ("uvicorn.access", "INFO", None, None),
    ]


def test_configure_logging_rejects_unknown_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNLAB_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="RNNLAB_LOG_FORMAT"):
        observability.configure_logging(Settings())


def test_the_log_settings_take_any_case_and_spacing(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.delenv("RNNLAB_LOG_FORMAT", raising=False)
    monkeypatch.delenv("RNNLAB_LOG_LEVEL", raising=False)
    defaults = Settings(_env_file=None)
    assert (defaults.log_format, defaults.log_level) == ("text", "INFO")

    monkeypatch.setenv("RNNLAB_LOG_FORMAT", " JSON ")
    monkeypatch.setenv("RNNLAB_LOG_LEVEL", " warning")
    settings = Settings(_env_file=None)
    assert (settings.log_format, settings.log_level) == ("json", "WARNING")
    observability.configure_logging(settings)
    assert logging.getLogger().level == logging.WARNING
    assert isinstance(logging.getLogger().handlers[0].formatter, logs.JsonFormatter)
