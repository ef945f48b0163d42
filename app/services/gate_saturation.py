"""The gate-saturation scatter of a checkpoint (Karpathy, Johnson & Fei-Fei 2015, figure 3): on a
given input, or by default on what the model was measured on in training: the first characters of
its job's validation text, or a fixed batch of palindromes of its length."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from app.core.errors import WrongTask
from app.core.tables import Checkpoint, Dataset, Job
from app.generation.cache import LoadedModel, ModelCache
from app.services import gradient_flow
from app.services.generation import Sessions, loaded_model
from app.services.xray import Input, chosen, model_input
from models.xray.limits import MAX_POSITIONS, MAX_TRACE_VALUES


async def plot(
    sessions: Sessions,
    cache: ModelCache,
    *,
    checkpoint_id: int | None = None,
    job_id: int | None = None,
    text: str | None,
    digits: str | None,
) -> bytes:
    from models.xray.trace import layer_sizes, model_type

    loaded = await loaded_model(sessions, cache, checkpoint_id=checkpoint_id, job_id=job_id, source="query")
    kind = model_type(loaded.model)
    if kind == "rnn":
        raise WrongTask(
            f"checkpoint {loaded.checkpoint_id} is an rnn model: it has no gates to saturate "
            "(POST /analyze shows its h)"
        )
    if text is None and digits is None:
        given, described = await run_in_threadpool(_default_input, sessions, loaded)
    else:
        given = model_input(loaded, text=text, digits=digits, source="query")
        described = f"{len(given.tokens)} given positions"
        sizes = layer_sizes(loaded.model)
        chosen(sizes, None, None, len(given.tokens), given.field, source="query")
    title = f"checkpoint {loaded.checkpoint_id} ({kind}): gate saturation over {described}"
    return await run_in_threadpool(_draw, loaded, given, title)


def _default_input(sessions: Sessions, loaded: LoadedModel) -> tuple[Input, str]:
    import torch

    from models.data import encode_digits, random_palindromes
    from models.xray.trace import layer_sizes

    if loaded.task == "palindrome":
        length = loaded.train_config["input_length"]
        generator = torch.Generator().manual_seed(gradient_flow.BATCH_SEED)
        digits = random_palindromes(gradient_flow.BATCH_SIZE, length + 1, generator)[:, :-1]
        inputs = encode_digits(digits, loaded.train_config["input_encoding"])
        described = f"{gradient_flow.BATCH_SIZE} palindromes of {length} digits"
        return Input(inputs, [], "digits"), described
    with sessions() as session:
        checkpoint = session.get(Checkpoint, loaded.checkpoint_id)
        job = session.get(Job, checkpoint.job_id) if checkpoint is not None else None
        dataset = session.get(Dataset, job.dataset_id) if job is not None and job.dataset_id else None
        corpus = dataset.text if dataset is not None else ""
    # TextData's split: the last val_fraction of the corpus (characters are positions).
    validation = corpus[len(corpus) - round(len(corpus) * loaded.train_config["val_fraction"]) :]
    known = set(loaded.vocab.chars)
    validation = "".join(ch for ch in validation if ch in known)
    positions = min(MAX_POSITIONS, MAX_TRACE_VALUES // sum(layer_sizes(loaded.model)))
    sample = validation[:positions]
    if len(sample) < 2:
        raise WrongTask(f"checkpoint {loaded.checkpoint_id} has no validation text to read: give `text`")
    return Input(loaded.vocab.encode(sample)[None], list(sample), "text"), (
        f"the first {len(sample):,} characters of its validation text"
    )


def _draw(loaded: LoadedModel, given: Input, title: str) -> bytes:
    from app.services import plots
    from models.xray.saturation import saturation
    from models.xray.trace import trace

    layers = []
    for layer in trace(loaded.model, given.tensor).layers:
        layers.append(
            {gate: (left.tolist(), right.tolist()) for gate, (left, right) in saturation(layer).items()}
        )
    return plots.to_png(plots.gate_saturation_figure(layers, title=title))
