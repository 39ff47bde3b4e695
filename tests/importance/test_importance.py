"""Importance measures and strategies on tiny models whose answer is known by construction."""

import copy
import json
import os
import sys
import types

import pytest
import torch

from layercut.errors import LayercutError
from layercut.importance import LayerRanking, choose_layers, rank_layers, rank_layers_cached
from layercut.importance import cache as ranking_cache
from layercut.importance.calibration import calibration_batches, read_calibration_texts
from layercut.importance.removal import _nll
from layercut.importance.strategies import drop_order, kept_layers, spaced
from layercut.model.blocks import find_blocks
from layercut.model.load import cut_layers
from tests.tiny_models import CALIBRATION_TEXTS, FAMILIES, tiny_model, tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = CALIBRATION_TEXTS
IDENTITY = 2  # the layer made an exact identity
SMALL = dict(samples=4, max_length=16, batch_size=2, progress=False)


def make_identity(model, layer: int) -> None:
    """Zero what a Llama block adds to the residual stream: its output is then exactly its input."""
    block = find_blocks(model).blocks[layer]
    with torch.no_grad():
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()


@pytest.fixture(scope="module")
def identity_llama():
    """A tiny Llama fitted to TEXTS with layer 2 held at identity.

    Fitting makes every other layer matter, so removing any of them must raise the loss, while
    removing the identity leaves it unchanged (a random model's layers may help or hurt at random).
    """
    model = tiny_model("llama")
    make_identity(model, IDENTITY)
    frozen = {f"model.layers.{IDENTITY}.self_attn.o_proj.weight", f"model.layers.{IDENTITY}.mlp.down_proj.weight"}
    optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if n not in frozen], lr=1e-2)
    batch = calibration_batches(tiny_tokenizer(), TEXTS, samples=8, max_length=16, batch_size=8)[0]
    model.train()
    for _ in range(40):
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.input_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def identity_ranking(identity_llama):
    return rank_layers(identity_llama, tiny_tokenizer(), TEXTS, samples=8, max_length=16, progress=False)


def test_identity_layer_is_least_important_by_every_measure(identity_ranking):
    r = identity_ranking
    assert abs(r.block_influence[IDENTITY]) < 1e-5
    assert min(range(4), key=r.block_influence.__getitem__) == IDENTITY
    assert r.angular_distance[1][IDENTITY] < 1e-3
    assert r.removal_loss[IDENTITY] == pytest.approx(r.full_loss, abs=1e-5)
    assert all(r.removal_loss[layer] > r.full_loss + 0.01 for layer in range(4) if layer != IDENTITY)
    assert r.greedy_order[0] == IDENTITY
    assert r.greedy_loss[0] == pytest.approx(r.full_loss, abs=1e-5)
    assert sorted(r.greedy_order) == [0, 1, 2, 3]
    for strategy in ("bi", "angular", "loss", "greedy"):
        assert r.keep(strategy, 3) == [0, 1, 3], strategy


def test_ranking_leaves_the_model_as_it_was(identity_llama):
    blocks = list(find_blocks(identity_llama).blocks)
    config = identity_llama.config.to_dict()
    ids = torch.tensor([[5, 17, 9, 22]])
    with torch.no_grad():
        before = identity_llama(ids).logits
    rank_layers(identity_llama, tiny_tokenizer(), TEXTS, **SMALL)
    assert list(find_blocks(identity_llama).blocks) == blocks
    assert identity_llama.config.to_dict() == config
    with torch.no_grad():
        assert torch.equal(identity_llama(ids).logits, before)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_removal_loss_equals_the_loss_of_the_cut_model(family):
    """Replaying from recorded block inputs must give exactly the model without that block."""
    model = tiny_model(family)
    tokenizer = tiny_tokenizer()
    ranking = rank_layers(model, tokenizer, TEXTS, measures=("loss",), **SMALL)
    batches = calibration_batches(tokenizer, TEXTS, samples=4, max_length=16, batch_size=2)
    tokens = sum(b.loss_tokens for b in batches)
    for layer in range(4):
        cut = cut_layers(copy.deepcopy(model), [i for i in range(4) if i != layer])
        with torch.no_grad():
            nll = sum(
                _nll(cut(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits, b)
                for b in batches
            )
        assert ranking.removal_loss[layer] == pytest.approx(nll / tokens, abs=1e-5)


def test_hooks_see_the_residual_stream_not_the_final_norm():
    model = tiny_model("llama")
    with torch.no_grad():  # an RMS norm of unit weight keeps directions: give it some to change
        model.model.norm.weight.uniform_(0.5, 1.5)
    ranking = rank_layers(model, tiny_tokenizer(), TEXTS, measures=("bi",), **SMALL)
    batches = calibration_batches(tiny_tokenizer(), TEXTS, samples=4, max_length=16, batch_size=2)
    sums, tokens = torch.zeros(4, dtype=torch.float64), 0
    with torch.no_grad():
        for b in batches:
            states = model(
                input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True
            ).hidden_states
            for layer in range(4):
                cos = torch.nn.functional.cosine_similarity(states[layer], states[layer + 1], dim=-1)
                sums[layer] += ((1 - cos) * b.attention_mask).sum().double()
            tokens += int(b.attention_mask.sum())
    from_states = (sums / tokens).tolist()
    assert ranking.block_influence[:3] == pytest.approx(from_states[:3], abs=1e-5)
    assert ranking.block_influence[3] != pytest.approx(from_states[3], abs=1e-3)  # hidden_states[-1] is after the norm


def test_padding_changes_nothing():
    """One text per sequence, padded in batches of 3 or not padded at all: the same scores."""
    model = tiny_model("llama")
    options = dict(samples=6, max_length=16, packed=False, progress=False)
    padded = rank_layers(model, tiny_tokenizer(), TEXTS, batch_size=3, **options)
    alone = rank_layers(model, tiny_tokenizer(), TEXTS, batch_size=1, **options)
    assert padded.block_influence == pytest.approx(alone.block_influence, abs=1e-6)
    for n in range(1, 4):
        assert padded.angular_distance[n] == pytest.approx(alone.angular_distance[n], abs=1e-6)
    assert padded.removal_loss == pytest.approx(alone.removal_loss, abs=1e-5)
    assert padded.greedy_order == alone.greedy_order


def test_rankings_are_deterministic():
    first = rank_layers(tiny_model("qwen2"), tiny_tokenizer(), TEXTS, **SMALL).to_dict()
    second = rank_layers(tiny_model("qwen2"), tiny_tokenizer(), TEXTS, **SMALL).to_dict()
    first.pop("seconds"), second.pop("seconds")
    assert first == second


def test_ranking_json_round_trip(identity_ranking, tmp_path):
    identity_ranking.save(tmp_path / "ranking.json")
    again = LayerRanking.load(tmp_path / "ranking.json")
    assert again == identity_ranking
    for strategy in identity_ranking.strategies:  # a calibration ranking has no task order
        for count in range(1, 5):
            assert again.keep(strategy, count) == identity_ranking.keep(strategy, count)
    data = json.loads((tmp_path / "ranking.json").read_text())
    assert data["drop_order"]["greedy"] == identity_ranking.greedy_order
    assert data["kept"]["bi"]["3"] == "0-1,3"


def test_reference_strategies():
    assert kept_layers("first", 3, 30) == [0, 1, 2]
    assert kept_layers("last", 2, 30) == [28, 29]
    assert spaced(1, 30) == [0]
    assert spaced(2, 30) == [0, 29]
    assert spaced(4, 30) == [0, 10, 19, 29]
    assert spaced(30, 30) == list(range(30))
    assert all(len(set(spaced(k, 7))) == k for k in range(1, 8))
    assert drop_order("first", 4) == [3, 2, 1, 0]
    with pytest.raises(LayercutError, match="no single drop order"):
        drop_order("spaced", 4)


@pytest.mark.parametrize(
    "strategy, count, message",
    [
        ("bi", 0, "choose a count from 1 to 4"),
        ("first", 5, "choose a count from 1 to 4"),
        ("middle", 2, "unknown layer strategy"),
        ("bi", 2, "needs calibration text"),
    ],
)
def test_choose_layers_refuses_bad_input(strategy, count, message):
    with pytest.raises(LayercutError, match=message):
        choose_layers(tiny_model("llama"), tiny_tokenizer(), strategy, count)


def test_choose_layers(identity_llama, identity_ranking):
    tokenizer = tiny_tokenizer()
    assert choose_layers(identity_llama, tokenizer, "spaced", 2) == [0, 3]
    assert choose_layers(identity_llama, tokenizer, "greedy", 3, TEXTS, samples=8, max_length=16, progress=False) == [
        0,
        1,
        3,
    ]
    assert choose_layers(identity_llama, tokenizer, "bi", 2, ranking=identity_ranking) == identity_ranking.keep("bi", 2)
    bigger = LayerRanking("other", 30, {}, block_influence=[0.0] * 30)
    with pytest.raises(LayercutError, match="30-layer model"):
        choose_layers(identity_llama, tokenizer, "bi", 2, ranking=bigger)
    with pytest.raises(LayercutError, match="block size 4 is outside 1..3"):
        rank_layers(identity_llama, tokenizer, TEXTS, block_sizes=[4], **SMALL)


def test_a_ranking_without_the_measure_says_what_to_rerun():
    ranking = rank_layers(tiny_model("llama"), tiny_tokenizer(), TEXTS, measures=("bi",), **SMALL)
    assert ranking.strategies == ("first", "last", "spaced", "bi", "angular")
    with pytest.raises(LayercutError, match="--measures including greedy"):
        ranking.keep("greedy", 2)


# Calibration sources and batches


def test_calibration_files(tmp_path):
    (tmp_path / "lines.txt").write_text("first text\n\n  second text  \n")
    assert read_calibration_texts(str(tmp_path / "lines.txt")) == ["first text", "second text"]
    (tmp_path / "rows.jsonl").write_text('{"text": "a b", "label": 1}\n\n{"text": "c"}\n')
    assert read_calibration_texts(str(tmp_path / "rows.jsonl")) == ["a b", "c"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", "\n  \n", "has no text"),
        ("bad.jsonl", '{"text": "ok"}\nnot json\n', "line 2 is not JSON"),
        ("nofield.jsonl", '{"sentence": "x"}\n', 'no "text" string'),
        ("latin.txt", b"caf\xe9\n", "is not UTF-8 text"),
    ],
)
def test_bad_calibration_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LayercutError, match=message):
        read_calibration_texts(str(path))


def test_calibration_folder_is_refused(tmp_path):
    with pytest.raises(LayercutError, match="is a folder"):
        read_calibration_texts(str(tmp_path))


def test_calibration_from_a_task_uses_training_texts_only(monkeypatch):
    def get_task(name):
        if name != "toy":
            raise LayercutError(f"unknown task '{name}'")
        return name

    example = types.SimpleNamespace
    fake = types.ModuleType("layercut.tasks")
    fake.get_task = get_task
    fake.load_examples = lambda spec: types.SimpleNamespace(
        train=[example(text="train one", text_b=None), example(text="premise", text_b="hypothesis")],
        test=[example(text="test text", text_b=None)],
    )
    monkeypatch.setitem(sys.modules, "layercut.tasks", fake)
    assert read_calibration_texts("toy") == ["train one", "premise hypothesis"]
    with pytest.raises(LayercutError, match="is not a file, nor a task"):
        read_calibration_texts("no-such-source")


def test_packed_batches_are_full_and_per_text_batches_right_padded():
    tokenizer = tiny_tokenizer()
    packed = calibration_batches(tokenizer, TEXTS * 3, samples=5, max_length=8, batch_size=2)
    assert [tuple(b.input_ids.shape) for b in packed] == [(2, 8), (2, 8), (1, 8)]
    assert all(bool(b.attention_mask.all()) for b in packed)
    per_text = calibration_batches(tokenizer, TEXTS, samples=6, max_length=16, batch_size=6, packed=False)[0]
    lengths = per_text.attention_mask.sum(1)
    assert len(set(lengths.tolist())) > 1
    for row, length in enumerate(lengths.tolist()):
        assert per_text.attention_mask[row, :length].all() and not per_text.attention_mask[row, length:].any()
    again = calibration_batches(tokenizer, TEXTS * 3, samples=5, max_length=8, batch_size=2)
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(packed, again))


@pytest.mark.slow
def test_real_smollm2_ranking(smollm2):
    """On real weights: the embedding-facing first layer matters most, and replay equals a real cut."""
    from layercut.model.load import load_model

    loaded = load_model(smollm2)
    texts = [
        "The weather was cold, so she wore a warm coat and walked quickly to the station to catch the early train.",
        "What is the capital of France? The capital of France is Paris, a city on the river Seine.",
        "The company reported higher profits this year as sales of its new phone rose in every market.",
        "The film was slow and boring, but the lead actor gave a fine performance in the final scene.",
    ] * 2
    options = dict(samples=4, max_length=48, batch_size=4, progress=False)
    ranking = rank_layers(loaded.model, loaded.tokenizer, texts, measures=("bi", "angular", "loss"), **options)
    assert ranking.depth == 30
    assert max(range(30), key=ranking.block_influence.__getitem__) == 0
    assert all(0 <= bi <= 2 for bi in ranking.block_influence)  # 1 - cos lies in [0, 2]
    assert max(range(30), key=ranking.removal_loss.__getitem__) == 0
    assert ranking.full_loss < min(ranking.removal_loss[1:]) + 0.5  # a middle layer costs little

    cut = load_model(smollm2, "drop:15").model
    batches = calibration_batches(loaded.tokenizer, texts, samples=4, max_length=48, batch_size=4)
    with torch.no_grad():
        nll = sum(
            _nll(cut(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits, b)
            for b in batches
        )
    assert ranking.removal_loss[15] == pytest.approx(nll / sum(b.loss_tokens for b in batches), abs=1e-4)


def test_rankings_are_cached_by_model_texts_and_measure(tiny_llama_folder, tmp_path, monkeypatch):
    from layercut.model.load import load_model

    monkeypatch.setenv("LAYERCUT_CACHE", str(tmp_path))
    computed = []
    real_rank_layers = ranking_cache.rank_layers
    monkeypatch.setattr(
        ranking_cache, "rank_layers", lambda *a, **k: computed.append(k["measures"]) or real_rank_layers(*a, **k)
    )
    loaded = load_model(str(tiny_llama_folder), "all")

    def rank(texts, measure):
        return rank_layers_cached(
            loaded.model,
            loaded.tokenizer,
            texts,
            model_id=str(tiny_llama_folder),
            measures=(measure,),
            samples=4,
            max_length=16,
            progress=False,
        )

    first = rank(TEXTS, "bi")
    assert rank(TEXTS, "bi").to_dict() == first.to_dict()
    assert computed == [("bi",)]
    rank(TEXTS[:-1], "bi")  # other texts
    rank(TEXTS, "loss")  # another measure
    config = tiny_llama_folder / "config.json"
    stat = config.stat()
    try:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the model's files changed
        rank(TEXTS, "bi")
    finally:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert computed == [("bi",), ("bi",), ("loss",), ("bi",)]
    assert len(list((tmp_path / "rankings").glob("*.json"))) == 4
