"""The units of a char-LSTM that track each built-in text feature (in_quotes, in_brackets,
line_position, word_start, vowel): per feature and layer, the top units by |Pearson r| of their cell
c (or `--signal h`) with the feature, on the tail of a corpus (the validation text of a job trained
on it with the default val_fraction, when --chars is at most 5 % of it).

In-process on a checkpoint file, or through a running server's `POST /analyze/units`:

    .venv/bin/python bench/find_units.py --checkpoint model.pt [--corpus grimms.txt] [--chars 10000]
    .venv/bin/python bench/find_units.py --url http://127.0.0.1:8000 --token T --checkpoint-id 3
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import httpx
import torch

from corpus import add_corpus_argument, load_bench_corpus  # bench/ is on sys.path
from models.checkpoint import load, load_model, load_vocabulary
from models.xray.features import FEATURES
from models.xray.trace import trace
from models.xray.units import ConstantFeature, rank_units

Row = tuple[str, int, int, float]  # feature, layer, unit, r


def in_process(path: Path, corpus: str, chars: int, signal: str, top: int) -> list[Row]:
    ckpt = load(path)
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    if vocab is None:
        raise SystemExit(f"{path} is a palindrome checkpoint: features are of text")
    known = set(vocab.chars)
    text = "".join(ch for ch in corpus if ch in known)[-chars:]
    traced = trace(model, vocab.encode(text)[None])
    rows = []
    for name, feature in FEATURES.items():
        values = feature(text)
        for layer, signals in enumerate(traced.layers):
            try:
                ranked = rank_units(signals[signal][0], values, top)
            except ConstantFeature:
                print(f"{name}: constant over this text, skipped")
                break
            rows += [(name, layer, unit.unit, unit.r) for unit in ranked]
    return rows


def over_http(
    url: str, token: str | None, checkpoint_id: int, corpus: str, chars: int, signal: str, top: int
) -> list[Row]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = corpus[-min(chars, 10_000) :]  # the endpoint reads up to 10,000 characters
    rows = []
    with httpx.Client(base_url=url, headers=headers, timeout=300) as api:
        for name in FEATURES:
            layer = 0
            while True:
                body: dict[str, Any] = {"checkpoint_id": checkpoint_id, "text": text, "feature": name}
                body |= {"layer": layer, "signal": signal, "top": top}
                response = api.post("/analyze/units", json=body)
                if response.status_code == 422 and "layer" in response.json()["detail"] and layer > 0:
                    break  # past the last layer
                if response.status_code != 200:
                    raise SystemExit(f"{name}, layer {layer}: {response.json()['detail']}")
                rows += [(name, layer, unit["unit"], unit["r"]) for unit in response.json()["units"]]
                layer += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a checkpoint file (GET /checkpoints/{id}/file)")
    source.add_argument("--url", help="a running server")
    parser.add_argument("--checkpoint-id", type=int, help="with --url: the text checkpoint")
    parser.add_argument("--token", default=os.environ.get("RNNLAB_TOKEN"), help="with --url: its API token")
    parser.add_argument("--chars", type=int, default=10_000, help="characters of the corpus's tail to read")
    parser.add_argument("--signal", choices=["c", "h"], default="c")
    parser.add_argument("--top", type=int, default=3)
    add_corpus_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = load_bench_corpus(args.corpus)
    if args.url:
        if args.checkpoint_id is None:
            parser.error("--url needs --checkpoint-id")
        rows = over_http(args.url, args.token, args.checkpoint_id, corpus, args.chars, args.signal, args.top)
    else:
        rows = in_process(args.checkpoint, corpus, args.chars, args.signal, args.top)
    print(f"signal {args.signal}, the last {args.chars:,} characters of the corpus")
    print(f"{'feature':14} {'layer':>5} {'unit':>5} {'r':>7}")
    for name, layer, unit, r in rows:
        print(f"{name:14} {layer:5} {unit:5} {r:+7.3f}")


if __name__ == "__main__":
    main()
