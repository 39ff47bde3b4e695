"""Shared-prefix computation gives the whole-prompt path's scores and training step, in every family."""

import copy

import pytest
import torch

from layercut.adapt.prefix_sharing import (
    active_dropout,
    common_prefix_length,
    group_by_prefix,
    make_batch,
    pack_prompts,
    prefix_overlap,
    reuse_prefix_cache,
)
from layercut.adapt.optim import sparse_embedding_gradients
from layercut.adapt.scorers import ClassificationHead, LabelWordHead, WholeWordHead
from layercut.run.pipeline import run
from layercut.run.prepare import packing_problem
from tests.run.test_run import tiny_config
from tests.tiny_models import FAMILIES, tiny_model

PREFIX = [2, 20, 8, 40, 9, 21, 8, 41, 9]  # a BOS, then two "demonstrations"
QUERIES = [[20, 8, 50, 51, 9, 21, 8], [20, 8, 52, 9, 21, 8], [20, 8, 53, 54, 55, 56, 9, 21, 8], [20, 8, 57, 9, 21, 8]]
PROMPTS = [PREFIX + q for q in QUERIES]
LABEL_IDS = [40, 41]


def without_dropout(model):
    """Zero every dropout so that two computations of a training step can be compared."""
    for name in dir(model.config):
        if ("dropout" in name or "pdrop" in name) and isinstance(getattr(model.config, name, None), float):
            setattr(model.config, name, 0.0)
    rebuilt = type(model)(model.config)
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt


def scorers(family):
    yield "lm", LabelWordHead(tiny_model(family), LABEL_IDS)
    yield "cls", ClassificationHead(tiny_model(family, head="cls", num_labels=2))


def test_common_prefix_leaves_every_prompt_its_last_token():
    assert common_prefix_length(PROMPTS) == len(PREFIX) + 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2], [3, 4]]) == 0
    assert common_prefix_length([[5]]) == 0
    assert common_prefix_length([]) == 0


def test_shared_batch_holds_the_same_tokens():
    length = common_prefix_length(PROMPTS)
    batch = make_batch(PROMPTS, pad_id=0, prefix_length=length)
    for prompt, row, mask in zip(PROMPTS, batch.input_ids, batch.attention_mask):
        assert batch.prefix_ids[0].tolist() + row[mask.bool()].tolist() == prompt
        assert mask.tolist() == sorted(mask.tolist(), reverse=True)  # no padding between prefix and query


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shared_prefix_scores_equal_whole_prompt_scores(family):
    length = common_prefix_length(PROMPTS)
    for head, scorer in scorers(family):
        with torch.no_grad():
            whole = scorer(make_batch(PROMPTS, 0))
            shared = scorer(make_batch(PROMPTS, 0, length))  # the prefix computed in the forward (training)
            ahead = make_batch(PROMPTS, 0, length)
            ahead = scorer(ahead.with_cache(scorer.prefix_cache(ahead.prefix_ids)))  # computed once (evaluation)
        assert torch.allclose(whole, shared, atol=1e-4), (head, (whole - shared).abs().max())
        assert torch.allclose(whole, ahead, atol=1e-4), (head, (whole - ahead).abs().max())


@pytest.mark.parametrize("family", ["llama", "gpt2", "bloom"])
def test_shared_prefix_whole_word_scores_equal(family):
    scorer = WholeWordHead(tiny_model(family), [[40, 60], [41]], pad_id=0)
    with torch.no_grad():
        whole = scorer(make_batch(PROMPTS, 0))
        shared = scorer(make_batch(PROMPTS, 0, common_prefix_length(PROMPTS)))
    assert torch.allclose(whole, shared, atol=1e-4)


# A training example that is itself a demonstration gets another one of its class: its prompt starts with
# the run's prefix only up to the swap.
SWAPPED = PREFIX[:5] + [21, 8, 43, 9] + QUERIES[1]
STEP_PROMPTS, STEP_LABELS = PROMPTS + [SWAPPED], [0, 1, 1, 0, 1]


def one_step_weights(model, head: str, batches, order) -> dict:
    """The weights after one SGD step on STEP_PROMPTS scored as `batches` (their rows in `order`)."""
    scorer = (
        LabelWordHead(copy.deepcopy(model), LABEL_IDS) if head == "lm" else ClassificationHead(copy.deepcopy(model))
    ).train()
    optimizer = torch.optim.SGD(scorer.parameters(), lr=0.1)  # Adam's first step is sign-like: too touchy
    labels = torch.tensor([STEP_LABELS[i] for i in order])
    torch.nn.functional.cross_entropy(scorer.score_together(batches), labels).backward()
    optimizer.step()
    return scorer.model.state_dict()


def assert_same_weights(ours: dict, theirs: dict) -> None:
    for name, weight in ours.items():
        assert torch.allclose(weight, theirs[name], atol=1e-5), name


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head", ["lm", "cls"])
def test_shared_prefix_training_step_gives_the_same_weights(family, head):
    """Whole prompts, against a step with the prompts that hold the whole prefix in one group and the swapped
    one in another that reads the first positions of the same prefix computation."""
    model = without_dropout(tiny_model(family, head=head, num_labels=2))
    assert not active_dropout(model)
    groups = group_by_prefix(STEP_PROMPTS, PREFIX)
    assert groups == [[0, 1, 2, 3], [4]]
    grouped = [
        make_batch([STEP_PROMPTS[i] for i in g], 0, prefix_overlap([STEP_PROMPTS[i] for i in g], PREFIX))
        for g in groups
    ]
    assert_same_weights(
        one_step_weights(model, head, [make_batch(STEP_PROMPTS, 0)], range(5)),
        one_step_weights(model, head, grouped, [i for g in groups for i in g]),
    )


# BLOOM builds ALiBi from a 2-D mask; the tiny Gemma 3's sliding window (16) is shorter than a packed batch.
PACKING_FALLS_BACK = {"bloom", "gemma3"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head", ["lm", "cls"])
def test_a_packed_training_step_gives_the_same_weights_or_falls_back(family, head):
    model = without_dropout(tiny_model(family, head=head, num_labels=2))
    scorer = LabelWordHead(model, LABEL_IDS) if head == "lm" else ClassificationHead(model)
    problem = packing_problem(scorer.eval(), PROMPTS, PREFIX, 0, torch.device("cpu"))
    assert (problem is not None) == (family in PACKING_FALLS_BACK), problem
    if problem is None:
        assert_same_weights(
            one_step_weights(model, head, [make_batch(STEP_PROMPTS, 0)], range(5)),
            one_step_weights(model, head, [pack_prompts(STEP_PROMPTS, PREFIX)], range(5)),
        )


def test_packed_prompts_see_the_prefix_up_to_where_they_leave_it():
    packed = pack_prompts(STEP_PROMPTS, PREFIX)
    assert packed.input_ids[0].tolist() == PREFIX + [t for p in STEP_PROMPTS for t in p[prefix_overlap([p], PREFIX) :]]
    mask = packed.attention_mask[0, 0]
    first, swapped = packed.ends.tolist()[0], packed.ends.tolist()[4]
    assert mask[first, : len(PREFIX)].all()
    assert mask[swapped, : len(PREFIX)].tolist() == [True] * 7 + [False] * 2
    assert mask[swapped, len(PREFIX) :].sum() == len(SWAPPED) - 7  # its own tokens, no other prompt's
    assert packed.position_ids[0, swapped] == len(SWAPPED) - 1


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3"])
def test_a_step_computes_the_prefix_once_where_its_cache_can_be_cut(family):
    """The swapped prompt's batch reads the first 7 positions of the whole prefix's cache (the swapped
    demonstration begins as the prefix's second one does); a sliding-window cache (Gemma 3) cannot be cut,
    so that batch computes its own prefix."""
    scorer = LabelWordHead(tiny_model(family), LABEL_IDS)
    batches = [make_batch(PROMPTS, 0, len(PREFIX)), make_batch([SWAPPED], 0, prefix_overlap([SWAPPED], PREFIX))]
    computed = []
    reused = reuse_prefix_cache(batches, lambda ids: computed.append(ids.shape[1]) or scorer.prefix_cache(ids))
    assert computed == [len(PREFIX)]
    assert reused[0].prefix_cache.get_seq_length() == len(PREFIX)
    if family == "gemma3":
        assert reused[1].prefix_cache is None
    else:
        assert reused[1].prefix_cache.get_seq_length() == 7


def test_dropout_is_found():
    assert active_dropout(tiny_model("gpt2"))  # GPT-2 configs default to 0.1
    assert not active_dropout(without_dropout(tiny_model("gpt2")))


@pytest.mark.parametrize("family", ["llama", "gpt2", "mistral"])  # tied, tied with positions, untied head
def test_sparse_embedding_gradients_equal_dense_ones(family):
    model = without_dropout(tiny_model(family))
    grads = []
    for sparse in (False, True):
        scorer = LabelWordHead(copy.deepcopy(model), LABEL_IDS).train()
        with sparse_embedding_gradients(scorer.model, enabled=sparse) as made_sparse:
            assert made_sparse == sparse
            loss = torch.nn.functional.cross_entropy(scorer(make_batch(PROMPTS, 0)), torch.tensor([0, 1, 1, 0]))
            loss.backward()
        grads.append({name: p.grad for name, p in scorer.named_parameters()})
    embedding = next(name for name in grads[1] if grads[1][name].is_sparse)
    for name, grad in grads[0].items():
        other = grads[1][name].to_dense() if grads[1][name].is_sparse else grads[1][name]
        assert torch.allclose(grad, other, atol=1e-6), name
    assert "embed" in embedding or "wte" in embedding


@pytest.mark.parametrize("head, demos", [("lm", "fixed"), ("cls", "fixed"), ("lm", "none")])
def test_a_run_with_sharing_predicts_what_the_whole_prompt_run_did(tiny_llama_folder, review_file, head, demos):
    whole = run(
        tiny_config(tiny_llama_folder, review_file, head=head, demos=demos, share_prefix=False), show_progress=False
    ).record
    shared = run(tiny_config(tiny_llama_folder, review_file, head=head, demos=demos), show_progress=False).record
    assert whole["prefix_sharing"] == {
        "evaluation": False,
        "training": False,
        "training_packed": False,
        "reasons": ["share_prefix is off"],
        "prefix_tokens": 0,
        "test_prefix_tokens": 0,
    }
    assert shared["prefix_sharing"]["evaluation"] and shared["prefix_sharing"]["training"]
    assert shared["prefix_sharing"]["training_packed"], shared["prefix_sharing"]["reasons"]
    assert shared["prefix_sharing"]["test_prefix_tokens"] > 0
    assert shared["predictions"] == whole["predictions"]
    for ours, theirs in zip(shared["dev"]["curve"], whole["dev"]["curve"]):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)


def test_resampled_demonstrations_do_not_share(tiny_llama_folder, review_file):
    record = run(
        tiny_config(tiny_llama_folder, review_file, demos="resample", method="icl"), show_progress=False
    ).record
    assert record["prefix_sharing"]["reasons"] == ["demonstrations differ per example (demos=resample)"]


def test_a_batch_groups_the_prompts_that_start_with_the_run_prefix():
    demo_example = [2, 20, 8, 41, 9, 20, 8, 40, 9, 20, 8, 50, 9]  # its own class's demonstration was swapped
    prompts = [PROMPTS[0], demo_example, PROMPTS[1], PREFIX]  # the last one is all prefix: nothing of its own
    assert group_by_prefix(prompts, PREFIX) == [[0, 2], [1, 3]]
    assert group_by_prefix(PROMPTS, PREFIX) == [[0, 1, 2, 3]]


@pytest.mark.parametrize("head", ["lm", "cls"])
def test_prefix_tuning_trains_only_the_virtual_tokens_and_shares_prefixes(tiny_llama_folder, review_file, head):
    whole = run(
        tiny_config(tiny_llama_folder, review_file, head=head, method="prefix", prefix_tokens=5, share_prefix=False),
        show_progress=False,
    ).record
    shared = run(
        tiny_config(tiny_llama_folder, review_file, head=head, method="prefix", prefix_tokens=5), show_progress=False
    ).record
    assert (
        shared["prefix_sharing"]["training"] and shared["predictions"]["predicted"] == whole["predictions"]["predicted"]
    )
    trainable = shared["parameters"]["trainable"]
    tiny_layers, hidden = 2, 32  # first:2 of the tiny Llama: 5 virtual tokens' keys and values per layer
    expected = 5 * tiny_layers * 2 * (hidden // 2) + (0 if head == "lm" else hidden * 2)  # 2 of 4 heads are KV heads
    assert trainable == expected, trainable
    losses = [point["train_loss"] for point in shared["dev"]["curve"]]
    assert losses[-1] < losses[0]


def test_a_step_budget_evaluates_dev_as_often_as_asked(tiny_llama_folder, review_file):
    record = run(
        tiny_config(tiny_llama_folder, review_file, max_steps=5, eval_every=2, patience=0), show_progress=False
    ).record
    assert [point["step"] for point in record["dev"]["curve"]] == [2, 4, 5]
    assert record["dev"]["stopped_because"] == "spent the step budget"
    assert record["metrics"]["majority_baseline"] == 0.5  # the tiny review test set is balanced
    calibrated = record["calibrated"]
    assert len(calibrated["content_free_probabilities"]) == 2 and calibrated["metrics"]["num_examples"] > 0
    assert record["splits"]["drawn"]["dev"].startswith("balanced")
