"""||dL/dh(t)|| for a palindrome job's model, trained (a checkpoint) or as it started (`at=init`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, WrongTask
from app.schemas.analysis import GradientFlowAt, GradientFlowOut
from app.services import checkpoints
from app.services.jobs import get_job

BATCH_SIZE = 256
# The batch is the same for every request on the same config, so two measurements compare the
# models, not the digits; kept apart from the training (config.seed) and evaluation seeds.
BATCH_SEED = 20_160_101


def gradient_flow(
    session: Session, job_id: int, *, at: GradientFlowAt, checkpoint_id: int | None
) -> GradientFlowOut:
    import torch

    from models.checkpoint import from_bytes, load_model
    from models.config import PalindromeConfig
    from models.data import encode_digits, random_palindromes
    from models.gradient_flow import hidden_gradient_norms
    from models.registry import architecture_for, build_model, initialisation_for

    job = get_job(session, job_id)
    if job.task != "palindrome":
        raise WrongTask(
            f"job {job_id} is a {job.task} job: gradient flow is measured on palindrome models "
            f"(rnn, lstm, phased_lstm), whose loss is taken at the last step; for a text model see "
            f"GET /jobs/{job_id}/memory-horizon"
        )
    config = PalindromeConfig(**job.config)
    step = 0
    if at == "init":
        if checkpoint_id is not None:
            raise InvalidInput(("query", "checkpoint_id"), "at=init measures the untrained model; omit it")
        # The job's own initial weights: the training loop seeds torch with config.seed before it
        # builds the model. fork_rng keeps this request from moving the server's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(architecture_for(config), **initialisation_for(config))
        model.eval()
    else:
        checkpoint = checkpoints.of_job(session, job, checkpoint_id)
        checkpoint_id = checkpoint.id
        step = checkpoint.step
        model = load_model(from_bytes(checkpoint.data))  # eval mode: a Phased LSTM gate without leak
    digits = random_palindromes(
        BATCH_SIZE, config.input_length + 1, torch.Generator().manual_seed(BATCH_SEED)
    )
    inputs, targets = encode_digits(digits[:, :-1], config.input_encoding), digits[:, -1]
    norms = hidden_gradient_norms(model, inputs, targets)
    return GradientFlowOut(
        job_id=job_id,
        model=config.model,
        input_length=config.input_length,
        at=at,
        checkpoint_id=None if at == "init" else checkpoint_id,
        step=step,
        batch_size=BATCH_SIZE,
        t=list(range(1, len(norms) + 1)),
        grad_norm=norms,
    )
