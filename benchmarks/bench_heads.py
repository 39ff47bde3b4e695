"""Evaluation throughput and training step time: layercut's label-word path vs the paper's naive path.

Naive (as the paper's code): batch size 1, `model(**batch).logits[:, -1, label_ids]` over the full
vocabulary at every position. layercut: left-padded batches, the LM head applied only to the label
words' rows at the last real token. SmolLM2 cut to k in {1, 2, 8, 30}, `trec` prompts with one
demonstration per class. Also the 30 -> k speed-up of each path next to its FLOP ratio.
Usage: python benchmarks/bench_heads.py [--examples 48]  (writes benchmarks/results/heads_smollm2.json)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from layercut.adapt.scorers import LabelWordHead
from layercut.model.load import load_model
from layercut.padding import collate_padded
from layercut.prompting import DemoSelector, PromptBuilder, resolve_label_words
from layercut.tasks import get_task, load_examples, make_splits

DEPTHS = (1, 2, 8, 30)
RESULTS = Path(__file__).parent / "results" / "heads_smollm2.json"


def prompts_for(tokenizer, count: int) -> tuple[list[list[int]], list[int], list[int]]:
    spec = get_task("trec")
    splits = make_splits(load_examples(spec), shots=16, seed=0, test_size=count)
    demos = DemoSelector("fixed", splits.train, spec.num_classes, seed=0)
    builder = PromptBuilder(spec, tokenizer, max_length=512)
    prompts = [builder.encode(e, demos.for_query(e)) for e in splits.test]
    return prompts, [e.label for e in splits.test], resolve_label_words(tokenizer, spec.label_words).first_ids


def time_eval(fn, prompts, batch_size, pad_id) -> float:
    with torch.no_grad():  # one untimed batch: thread pools and allocator warm up
        fn(*collate_padded(prompts[:batch_size], pad_id, left=True))
    start = time.perf_counter()
    with torch.no_grad():
        for begin in range(0, len(prompts), batch_size):
            fn(*collate_padded(prompts[begin : begin + batch_size], pad_id, left=True))
    return len(prompts) / (time.perf_counter() - start)


def time_train(fn, model, prompts, labels, batch_size, pad_id, steps) -> float:
    """Seconds per training example (forward, backward, AdamW step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        chunk = slice(step * batch_size, (step + 1) * batch_size)
        logits = fn(*collate_padded(prompts[chunk], pad_id, left=True))
        torch.nn.functional.cross_entropy(logits, torch.tensor(labels[chunk])).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return (time.perf_counter() - start) / (steps * batch_size)


def forward_flops(model, tokens: int, head_rows: int, head_positions: int) -> float:
    """2 x non-embedding parameters x tokens (blocks) + 2 x hidden x rows x positions (LM head)."""
    blocks = model.num_parameters(exclude_embeddings=True)
    return 2.0 * blocks * tokens + 2.0 * model.config.hidden_size * head_rows * head_positions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--train-steps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for k in DEPTHS:
        loaded = load_model("smollm2-135m", f"first:{k}")
        model, tokenizer = loaded.model, loaded.tokenizer
        pad = tokenizer.pad_token_id
        prompts, labels, label_ids = prompts_for(tokenizer, args.examples)
        head = LabelWordHead(model, label_ids)

        def naive(input_ids, attention_mask):
            return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -1, label_ids]

        tokens = sum(map(len, prompts)) / len(prompts)
        row = {
            "k": k,
            "mean_prompt_tokens": tokens,
            "eval_examples_per_s": {
                "layercut": time_eval(head, prompts, 16, pad),
                "naive": time_eval(naive, prompts, 1, pad),
            },
            "train_seconds_per_example": {
                "layercut": time_train(head, model, prompts, labels, 4, pad, args.train_steps),
                "naive": time_train(naive, model, prompts, labels, 1, pad, args.train_steps),
            },
            "forward_gflops_per_example": {
                "layercut": forward_flops(model, tokens, len(label_ids), 1) / 1e9,
                "naive": forward_flops(model, tokens, model.config.vocab_size, tokens) / 1e9,
            },
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    full = rows[-1]
    print(
        f"\n{'k':>3} {'eval ex/s ours':>15} {'naive':>7} {'x':>6} | {'train s/ex ours':>15} {'naive':>7} {'x':>6} |"
        f" {'30->k speed-up ours':>19} {'FLOP ratio':>10} | {'naive':>6} {'FLOP ratio':>10}"
    )
    for row in rows:
        ours, naive = row["eval_examples_per_s"]["layercut"], row["eval_examples_per_s"]["naive"]
        t_ours, t_naive = row["train_seconds_per_example"]["layercut"], row["train_seconds_per_example"]["naive"]
        f = row["forward_gflops_per_example"]
        row["speedup_vs_naive"] = {"eval": ours / naive, "train": t_naive / t_ours}
        row["speedup_from_30"] = {
            "layercut": ours / full["eval_examples_per_s"]["layercut"],
            "naive": naive / full["eval_examples_per_s"]["naive"],
            "flop_ratio_layercut": full["forward_gflops_per_example"]["layercut"] / f["layercut"],
            "flop_ratio_naive": full["forward_gflops_per_example"]["naive"] / f["naive"],
        }
        s = row["speedup_from_30"]
        print(
            f"{row['k']:>3} {ours:>15.1f} {naive:>7.1f} {ours / naive:>5.1f}x | {t_ours:>15.3f} {t_naive:>7.3f} {t_naive / t_ours:>5.1f}x |"
            f" {s['layercut']:>18.1f}x {s['flop_ratio_layercut']:>9.1f}x | {s['naive']:>5.1f}x {s['flop_ratio_naive']:>9.1f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"examples": args.examples, "rows": rows}, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
