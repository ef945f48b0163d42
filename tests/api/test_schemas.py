"""A train request is its training config plus service fields, and `SERVICE_FIELDS` names exactly those."""

from __future__ import annotations

from pydantic import BaseModel

from app.schemas.training import SERVICE_FIELDS, PalindromeTrainRequest, TextTrainRequest
from models.config import PalindromeConfig, TextConfig

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (PalindromeTrainRequest, PalindromeConfig),
    (TextTrainRequest, TextConfig),
]


def test_service_fields_are_what_requests_add_to_their_configs() -> None:
    assert sorted(SERVICE_FIELDS) == ["dataset_id", "resume_from"]
    for request, config in PAIRS:
        assert set(request.model_fields) - SERVICE_FIELDS == set(config.model_fields)


def test_a_request_without_its_service_fields_is_the_config_the_loop_runs() -> None:
    request = TextTrainRequest(hidden_size=16, dataset_id=3, resume_from=4)
    config = TextConfig(**request.model_dump(exclude=SERVICE_FIELDS))
    assert config == TextConfig(hidden_size=16)
    palindrome = PalindromeTrainRequest(model="rnn", resume_from=2)
    assert PalindromeConfig(**palindrome.model_dump(exclude=SERVICE_FIELDS)) == PalindromeConfig(model="rnn")
