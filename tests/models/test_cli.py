"""`python -m models`: one meaning per flag (`--seed-text` is a prompt, `--random-seed` a random seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.__main__ import main as cli
from models.checkpoint import load, save

TINY = ["--input-length", "3", "--hidden-size", "8", "--batch-size", "16", "--eval-size", "1000"]
QUIET = ["--log-every", "100", "--eval-every", "100", "--device", "cpu"]


def test_the_training_config_seed_is_the_random_seed_flag(tmp_path: Path) -> None:
    out = tmp_path / "palindrome.pt"
    args = ["train", "--task", "palindrome", *TINY, *QUIET, "--train-steps", "2", "--out", str(out)]
    assert cli([*args, "--random-seed", "7"]) == 0
    assert load(out)["train_config"]["seed"] == 7


def test_bare_seed_flags_are_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["train", "--task", "palindrome", "--seed", "7"],
        ["sample", "--checkpoint", str(tmp_path / "x.pt"), "--seed", "Once"],
    ):
        with pytest.raises(SystemExit) as excinfo:
            cli(args)
        assert excinfo.value.code == 2
        assert "unrecognized arguments: --seed" in capsys.readouterr().err


def test_sample_continues_the_seed_text(text_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "text.pt"
    save(text_run.final_checkpoint, path)
    args = ["sample", "--checkpoint", str(path), "--length", "12", "--random-seed", "3"]
    assert cli([*args, "--seed-text", "The king"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("The king") and len(line) == len("The king") + 12
