"""Classify new texts with a model saved by `layercut run --save-model`, prompted as in its evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from layercut.adapt.evaluation import score_prompts
from layercut.adapt.scorers import build_scorer
from layercut.errors import LayercutError, reported_as
from layercut.model.checkpoint import read_record
from layercut.model.load import auto_class
from layercut.model.sources import Trust, check_model_code, load_tokenizer
from layercut.prompting import DemoSelector, LabelWords, PromptBuilder
from layercut.prompting.embed import mean_pooled_embedder
from layercut.tasks import Example, TaskSpec
from layercut.text_files import read_utf8


@dataclass
class Predictor:
    scorer: torch.nn.Module
    prompts: PromptBuilder
    demos: DemoSelector
    label_names: list[str]
    pad_id: int

    def predict(self, texts: list[str], batch_size: int = 16) -> list[tuple[str, dict[str, float]]]:
        queries = [Example(text=text, label=0, uid=f"query-{i}") for i, text in enumerate(texts)]
        self.demos.prepare(queries)
        prompts = [self.prompts.encode(q, self.demos.for_query(q)) for q in queries]
        scores = score_prompts(self.scorer, prompts, self.pad_id, batch_size, torch.device("cpu"))
        return [
            (self.label_names[p], dict(zip(self.label_names, probs)))
            for p, probs in zip(scores.predictions, scores.probabilities)
        ]


def load_predictor(model_dir: str | Path, trust: Trust = Trust()) -> Predictor:
    from safetensors import SafetensorError

    record = read_record(model_dir)
    # Checked before transformers sees the folder: given no answer, it would ask on stdin whether to run the code.
    check_model_code(Path(model_dir), trust)
    if "task" not in record:
        raise LayercutError(
            f"'{model_dir}' is a cut model but was never adapted to a task: train one with `layercut run --save-model`"
        )
    with reported_as(
        f"'{model_dir}/layercut.json' is incomplete or damaged",
        "save the model again with `layercut run --save-model`",
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ):
        spec = TaskSpec(**{k: v for k, v in record["task"].items() if k != "test_rule"})
        head = record["head"]
        words = record["label_words"]
        label_words = LabelWords(tuple(words["words"]), words["token_ids"], words["policy"], words["multi_token"])
        demos_record = record["demonstrations"]
        pool = [Example(**e) for e in demos_record["pool"]]
        demo_policy, demo_seed = demos_record["policy"], demos_record["seed"]
        max_length = int(record["max_length"])
    model_class = auto_class(head)
    with reported_as(
        f"cannot load the model in '{model_dir}'",
        "its files are damaged or incomplete: save the model again",
        OSError,
        ValueError,
        SafetensorError,
        RuntimeError,
    ):
        model = model_class.from_pretrained(model_dir, use_safetensors=True, trust_remote_code=trust.remote_code).eval()
    tokenizer = load_tokenizer(str(model_dir), trust)
    embed = mean_pooled_embedder(model, tokenizer) if demo_policy == "similar" else None
    demos = DemoSelector(demo_policy, pool, spec.num_classes, demo_seed, embed=embed)
    return Predictor(
        build_scorer(head, model, label_words, tokenizer.pad_token_id),
        PromptBuilder(spec, tokenizer, max_length),
        demos,
        list(spec.label_names),
        tokenizer.pad_token_id,
    )


def read_texts(texts: list[str], file: str | None) -> list[str]:
    texts = list(texts)
    if file:
        path = Path(file)
        if not path.is_file():
            raise LayercutError(f"text file '{file}' does not exist: check the path")
        texts += [line.strip() for line in read_utf8(path, "text file").splitlines() if line.strip()]
    if not texts:
        raise LayercutError("no texts to classify: give them as arguments or with --file (one per line)")
    return texts
