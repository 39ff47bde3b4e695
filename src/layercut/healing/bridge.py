"""A training-free repair: a least-squares linear map where the cut blocks were, folded into the weights.

After ReplaceMe (2025). On calibration text the cut model's last hidden state H (before the final norm)
is compared with the full model's, Y. The last kept block adds its MLP output projection's output X to
the residual stream, so replacing X by X @ M changes H into H - X + X @ M; M is fitted so that this is
as close to Y as least squares gets. M is then multiplied into that projection's weights: the model keeps
its architecture and saves as a plain checkpoint. The fit solves for M - I (the minimum-norm correction),
so that with fewer calibration tokens than hidden units the map stays near the identity rather than near 0.
For first-k the gap is the dropped tail; for any other cut, one map at the end absorbs every gap.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from layercut.errors import LayercutError
from layercut.errors import setting as named
from layercut.importance.blockio import block_output, body, model_device
from layercut.importance.calibration import CalibrationBatch, calibration_batches
from layercut.importance.removal import running_only
from layercut.model.blocks import find_blocks
from layercut.model.load import load_model

# The module whose output a block adds to its residual stream last, per family (first match wins).
OUTPUT_PROJECTIONS = ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "mlp.fc2", "mlp.fc_out", "fc2")


@dataclass
class BridgeFit:
    matrix: torch.Tensor  # [hidden, hidden], applied to row vectors: x -> x @ matrix
    record: dict


def output_projection(model: nn.Module, block: nn.Module) -> tuple[str, nn.Module]:
    """The block's MLP output projection, when the block adds its output to the residual stream unchanged."""
    config = model.config
    if hasattr(block, "post_feedforward_layernorm") or getattr(config, "do_layer_norm_before", True) is False:
        raise LayercutError(
            f"{named('bridge', 'lstsq')} cannot be folded into {config.model_type}: a norm follows its MLP output, "
            f"so no weight carries a linear map of it; leave out {named('bridge')} for this model"
        )
    for name in OUTPUT_PROJECTIONS:
        try:
            module = block.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            return name, module
    raise LayercutError(
        f"{named('bridge', 'lstsq')} does not know where {config.model_type}'s blocks project their MLP output: "
        f"leave out {named('bridge')} for this model, or open an issue with the model id"
    )


@torch.no_grad()
def fit_bridge(full_model: nn.Module, kept: list[int], batches: list[CalibrationBatch]) -> BridgeFit:
    """Fit M on `batches` from the uncut `full_model` and the blocks it keeps (`kept`, indices into it)."""
    start = time.perf_counter()
    blocks = find_blocks(full_model).blocks
    name, projection = output_projection(full_model, blocks[kept[-1]])
    device = model_device(full_model)
    full_model.eval()
    targets, cut_last, projected = [], [], []
    for batch in batches:
        batch = batch.to(device)
        real = batch.attention_mask.bool()
        targets.append(_captured(full_model, blocks[-1], batch)[real])
        outputs = []
        handle = projection.register_forward_hook(lambda module, args, output: outputs.append(output))
        try:
            with running_only(full_model, kept):
                cut_last.append(_captured(full_model, blocks[kept[-1]], batch)[real])
        finally:
            handle.remove()
        projected.append(outputs[-1].reshape(*real.shape, -1)[real])  # OPT flattens batch and positions
    y, h, x = (torch.cat(parts).double().cpu() for parts in (targets, cut_last, projected))
    wanted = y - h + x  # what the projection should output for the cut model's last state to equal y
    correction = torch.linalg.lstsq(x, wanted - x, driver="gelsd").solution
    matrix = torch.eye(x.shape[1], dtype=torch.float64) + correction
    scale = y.norm()
    record = {
        "method": "lstsq",
        "folded_into": f"block {len(kept) - 1} (source layer {kept[-1]}): {name}",
        "calibration_tokens": x.shape[0],
        "hidden_size": x.shape[1],
        # Fewer equations than unknowns per column: the map fits the calibration tokens exactly, whatever they are.
        "underdetermined": x.shape[0] < x.shape[1],
        "relative_error_before": float((h - y).norm() / scale),
        "relative_error_after": float((h - x + x @ matrix - y).norm() / scale),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return BridgeFit(matrix, record)


def _captured(model: nn.Module, block: nn.Module, batch: CalibrationBatch) -> torch.Tensor:
    """`block`'s output hidden state in a forward pass of `model`'s body."""
    seen = []
    handle = block.register_forward_hook(lambda module, args, output: seen.append(block_output(output)))
    try:
        body(model)(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    finally:
        handle.remove()
    return seen[-1]


@torch.no_grad()
def fold_bridge(cut_model: nn.Module, matrix: torch.Tensor) -> None:
    """Multiply `matrix` into the output projection of the cut model's last block, in place."""
    _, projection = output_projection(cut_model, find_blocks(cut_model).blocks[-1])
    weight = projection.weight
    m = matrix.to(device=weight.device, dtype=torch.float64)
    if isinstance(projection, nn.Linear):  # y = x W^T + b, so y M = x (M^T W)^T + b M
        weight.copy_((m.T @ weight.double()).to(weight.dtype))
    else:  # Conv1D: y = x W + b
        weight.copy_((weight.double() @ m).to(weight.dtype))
    if projection.bias is not None:
        projection.bias.copy_((projection.bias.double() @ m).to(projection.bias.dtype))


def apply_bridge(
    loaded, texts: list[str], source: str, samples: int, max_length: int = 128, device: torch.device | None = None
) -> dict:
    """Fit a bridge for `loaded` (a cut `LoadedModel`) on `texts` against its uncut source (run on `device`,
    by default the cut model's), fold it in, and record it in `loaded.extras["bridge"]`."""
    full = load_model(loaded.model_id, "all").model.to(device or model_device(loaded.model))
    output_projection(full, find_blocks(full).blocks[loaded.kept[-1]])  # an unfoldable family fails before the fit
    batches = calibration_batches(loaded.tokenizer, texts, samples=samples, max_length=max_length)
    fit = fit_bridge(full, loaded.kept, batches)
    del full
    fold_bridge(loaded.model, fit.matrix)
    fit.record["calibration"] = {
        "source": source,
        "texts": len(texts),
        "sequences": sum(len(b.input_ids) for b in batches),
    }
    loaded.extras["bridge"] = fit.record
    if fit.record["underdetermined"]:
        print(
            f"layercut: warning: --bridge lstsq was fitted on {fit.record['calibration_tokens']} calibration tokens, "
            f"fewer than the map's width ({fit.record['hidden_size']}): the fit is underdetermined, so its relative "
            f"error {fit.record['relative_error_after']:.4f} says nothing about other text; give more calibration text",
            file=sys.stderr,
        )
    return fit.record
