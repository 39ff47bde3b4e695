"""What a training step costs per vocabulary row: nothing where the math allows.

Row-sparse AdamW keeps moments for the rows ever touched only (no vocabulary-sized state) and gives the dense
optimizer's weights; the best-dev snapshot of the embedding holds its touched rows only and restores the
weights exactly; whole-word scoring runs the LM head only at the positions that score the words.
"""

import copy

import pytest
import torch
from torch import nn

from layercut.adapt.prefix_sharing import make_batch
from layercut.adapt.optim import RowSparseAdamW, RowSnapshot
from layercut.adapt.scorers import WholeWordHead
from layercut.adapt.training import Budget, train
from tests.adapt.test_shared_prefix import LABEL_IDS, PREFIX, PROMPTS, without_dropout
from tests.tiny_models import FAMILIES, tiny_model

STEPS = ([1, 2, 2], [3], [1, 7], [], [9, 3], [40, 41, 3])  # later steps leave earlier rows untouched


def sparse_grad(rows: list[int], shape=(50, 4)) -> torch.Tensor:
    rows = torch.tensor(rows, dtype=torch.long)
    return torch.sparse_coo_tensor(rows[None], torch.randn(len(rows), *shape[1:]), shape)


def test_row_sparse_adamw_equals_dense_adamw_and_holds_the_touched_rows_only():
    """Stepping only the rows ever touched gives the dense optimizer's weights; rows never touched stay exact."""
    torch.manual_seed(0)
    start = torch.randn(50, 4)
    sparse_weight, dense_weight = nn.Parameter(start.clone()), nn.Parameter(start.clone())
    sparse_optimizer = RowSparseAdamW([sparse_weight], lr=1e-2)
    dense_optimizer = torch.optim.AdamW([dense_weight], lr=1e-2, weight_decay=0.0, fused=True)
    for rows in STEPS:
        grad = sparse_grad(rows)
        sparse_weight.grad, dense_weight.grad = grad, grad.to_dense()
        sparse_optimizer.step()
        dense_optimizer.step()
        sparse_optimizer.zero_grad()
        dense_optimizer.zero_grad()
    assert torch.allclose(sparse_weight, dense_weight, atol=1e-7)
    assert not torch.equal(sparse_weight[1], start[1])  # moved
    assert torch.equal(sparse_weight[20], start[20])  # never touched: exactly unchanged
    state = sparse_optimizer.rows[sparse_weight]
    assert state.count == 7 and state.rows[:7].tolist() == [1, 2, 3, 7, 9, 40, 41]  # in the order first touched
    assert not sparse_optimizer.state  # no moments of the whole table
    assert torch.equal(state.original[:7], start[[1, 2, 3, 7, 9, 40, 41]])


def test_a_dense_gradient_after_sparse_ones_continues_as_dense_adamw():
    torch.manual_seed(0)
    start = torch.randn(50, 4)
    ours, theirs = nn.Parameter(start.clone()), nn.Parameter(start.clone())
    optimizer = RowSparseAdamW([ours], lr=1e-2)
    reference = torch.optim.AdamW([theirs], lr=1e-2, weight_decay=0.0, fused=True)
    for grad in [sparse_grad([1, 2]), sparse_grad([5]), torch.randn(50, 4), sparse_grad([7]).to_dense()]:
        ours.grad, theirs.grad = grad, grad.to_dense() if grad.is_sparse else grad
        optimizer.step()
        reference.step()
        optimizer.zero_grad()
        reference.zero_grad()
    assert ours not in optimizer.rows and torch.allclose(ours, theirs, atol=1e-7)


@pytest.mark.parametrize("dense_at", [None, 2, 0])
def test_snapshots_of_touched_rows_restore_the_weights_exactly(dense_at):
    """A snapshot at every step, restored after all steps, gives that step's weights; also when the parameter
    went dense afterwards (`dense_at`), or from the first step."""
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(50, 4))
    optimizer = RowSparseAdamW([weight], lr=1e-2)
    optimizer.track_rows(weight)
    taken = [(optimizer.snapshot(weight), weight.detach().clone())]
    for index, rows in enumerate(STEPS):
        grad = sparse_grad(rows)
        weight.grad = grad.to_dense() if dense_at is not None and index >= dense_at else grad
        optimizer.step()
        optimizer.zero_grad()
        taken.append((optimizer.snapshot(weight), weight.detach().clone()))
    assert isinstance(taken[0][0], RowSnapshot) and len(taken[0][0].rows) == 0
    if dense_at is None:
        assert all(isinstance(snapshot, RowSnapshot) for snapshot, _ in taken)
        assert len(taken[-1][0].rows) == 7  # 7 of 50 rows copied
    for snapshot, expected in taken:
        optimizer.restore(weight, snapshot)
        assert torch.equal(weight, expected)


def test_training_restores_the_best_dev_weights_with_a_row_sparse_embedding(one_thread):
    """The best-dev weights after training equal the weights at the best evaluation (a full copy taken then)."""
    scorer_model = without_dropout(tiny_model("llama"))
    from layercut.adapt.scorers import LabelWordHead

    scorer = LabelWordHead(scorer_model, LABEL_IDS)
    labels = torch.tensor([0, 1, 1, 0])
    copies, accuracies = [], iter([0.5, 0.75, 0.5, 0.25])

    def batches(epoch):
        yield [(make_batch(PROMPTS, 0), labels, None)]

    def dev():
        copies.append({name: p.detach().clone() for name, p in scorer.named_parameters()})
        return next(accuracies), 1.0

    outcome = train(
        scorer,
        batches,
        dev,
        Budget(steps=4, eval_every=1, patience=0),
        learning_rate=1e-2,
        weight_decay=0.0,
        gradient_accumulation=1,
        show_progress=False,
    )
    assert outcome.best_step == 2 and "embedding rows" in outcome.optimizer
    for name, p in scorer.named_parameters():
        assert torch.equal(p, copies[1][name]), name


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("prefix_length", [0, len(PREFIX)], ids=["whole", "shared-prefix"])
def test_whole_word_scores_equal_the_full_logits_ones(family, prefix_length):
    """The LM head at the words' positions only gives what the model's own full logits give."""
    model = without_dropout(tiny_model(family))
    words = [[40, 41], [50], [60, 61, 62]]
    scorer = WholeWordHead(model, words, 0)
    batch = make_batch(PROMPTS, 0, prefix_length)
    ours = scorer(batch)
    theirs = full_logits_scores(model, words, batch)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def full_logits_scores(model, words, batch) -> torch.Tensor:
    """Whole-word scores from the causal LM's full logits at every position (the former computation)."""
    from layercut.adapt.prefix_sharing import PromptBatch, forward_prompts
    from layercut.padding import collate_padded, last_real_index

    rows = [p[m.bool()].tolist() + word[:-1] for p, m in zip(batch.input_ids, batch.attention_mask) for word in words]
    ids, mask = collate_padded(rows, 0, left=batch.prefix_ids is None)
    output, mask = forward_prompts(copy.deepcopy(model), PromptBatch(ids, mask, batch.prefix_ids))
    scores = []
    for i, end in enumerate((last_real_index(mask) + 1).tolist()):
        word = torch.tensor(words[i % len(words)])
        log_probs = torch.log_softmax(output.logits[i, end - len(word) : end].float(), dim=-1)
        scores.append(log_probs[torch.arange(len(word)), word].sum())
    return torch.stack(scores).view(batch.size, len(words))
