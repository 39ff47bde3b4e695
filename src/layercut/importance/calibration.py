"""Calibration text for the importance measures: where it comes from, and how it becomes token batches.

A source is a text file (one text per line), a `.jsonl` file (a "text" field per line), or a task
name, whose training texts are used (never its test texts: layers chosen on test text would leak).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from layercut.errors import LayercutError
from layercut.padding import collate_padded
from layercut.text_files import read_utf8

SHUFFLE_SEED = 0  # fixed, so the same source always gives the same calibration batches


@dataclass(frozen=True)
class CalibrationBatch:
    """Right-padded token ids and their attention mask (1 = real token)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def loss_tokens(self) -> int:
        """Positions whose next token is real: the tokens a next-token loss is averaged over."""
        return int(self.loss_mask.sum())

    @property
    def loss_mask(self) -> torch.Tensor:
        return (self.attention_mask[:, 1:] * self.attention_mask[:, :-1]).bool()

    def to(self, device) -> "CalibrationBatch":
        return CalibrationBatch(self.input_ids.to(device), self.attention_mask.to(device))


def read_calibration_texts(source: str, what: str = "calibration") -> list[str]:
    """The non-empty texts of a file or of a task's training split; `what` names the source in errors
    ("perplexity" for `eval --perplexity`)."""
    path = Path(source).expanduser()
    if path.is_dir():
        raise LayercutError(f"{what} source '{source}' is a folder: give a text file, a .jsonl file or a task name")
    texts = _read_file(path, what) if path.is_file() else _read_task(source, what)
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise LayercutError(
            f"{what} {'file' if path.is_file() else 'source'} '{source}' has no text: "
            "give a file with at least one non-empty line"
        )
    return texts


def _read_file(path: Path, what: str) -> list[str]:
    try:
        lines = read_utf8(path, f"{what} file").splitlines()
    except OSError as error:
        raise LayercutError(f"cannot read {what} file '{path}' ({error.strerror}): give a readable text file") from None
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise LayercutError(
                f"{what} file '{path}' line {number} is not JSON: write one JSON object per line"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LayercutError(f'{what} file \'{path}\' line {number} has no "text" string: add a "text" field')
        texts.append(record["text"])
    return texts


def _read_task(name: str, what: str) -> list[str]:
    try:
        from layercut.tasks import get_task, load_examples
    except ImportError:
        raise LayercutError(
            f"{what} source '{name}' is not a file (and tasks are unavailable): give a text or .jsonl file"
        ) from None
    try:
        spec = get_task(name)
    except LayercutError as error:
        raise LayercutError(f"{what} source '{name}' is not a file, nor a task ({error})") from None
    return [f"{e.text} {e.text_b}" if e.text_b else e.text for e in load_examples(spec).train]


def calibration_batches(
    tokenizer, texts: list[str], *, samples: int = 64, max_length: int = 128, batch_size: int = 8, packed: bool = True
) -> list[CalibrationBatch]:
    """Up to `samples` sequences of at most `max_length` tokens, in batches.

    Packed (the default, as SLEB and ShortGPT calibrate): the shuffled texts are joined with the
    end-of-text token and cut into full-length sequences, so no token is padding. Otherwise each
    sequence is one text, truncated and right-padded: its last real token is the one a classifier reads.
    """
    if samples < 1 or max_length < 2 or batch_size < 1:
        raise LayercutError(
            f"calibration needs samples >= 1, max length >= 2 and batch size >= 1 (got {samples}, {max_length}, {batch_size})"
        )
    order = list(texts)
    random.Random(SHUFFLE_SEED).shuffle(order)
    sequences = (
        _packed(tokenizer, order, samples, max_length) if packed else _per_text(tokenizer, order, samples, max_length)
    )
    if not sequences:
        raise LayercutError("the calibration texts give no tokens with this tokenizer: give other text")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return [
        CalibrationBatch(*collate_padded(sequences[i : i + batch_size], pad, left=False))
        for i in range(0, len(sequences), batch_size)
    ]


def _packed(tokenizer, texts: list[str], samples: int, max_length: int) -> list[list[int]]:
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for text in texts:  # tokenize only as much text as the sequences need
        if len(stream) >= samples * max_length:
            break
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + separator
    stream = stream[: samples * max_length]
    return [stream[i : i + max_length] for i in range(0, len(stream), max_length)]


def _per_text(tokenizer, texts: list[str], samples: int, max_length: int) -> list[list[int]]:
    encoded = (tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts[:samples])
    return [ids for ids in encoded if ids]
