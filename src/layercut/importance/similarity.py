"""Block Influence (ShortGPT) and angular distance (Gromov et al.), from one forward pass with hooks.

Hooks on the blocks see each block's input and output; nothing is copied and no logits are computed.
Write h_l for the input of block l and h_{l+1} for its output.
- Block Influence of layer l: 1 - cos(h_l, h_{l+1}), averaged over every real (non-pad) token.
- Angular distance of the n-block run starting at l: arccos(cos(h_l, h_{l+n})) / pi at each
  sequence's last real token, averaged over sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from layercut.importance.blockio import block_input, block_output, body, model_device
from layercut.importance.calibration import CalibrationBatch
from layercut.model.blocks import find_blocks
from layercut.padding import last_real_index
from layercut.progress import progress_bar


@dataclass
class HiddenStateMeasures:
    block_influence: list[float]  # one per layer
    angular_distance: dict[int, list[float]]  # n -> one per start layer l = 0 .. depth - n


def hidden_state_measures(
    model, batches: list[CalibrationBatch], block_sizes: list[int], progress: bool = True
) -> HiddenStateMeasures:
    blocks = find_blocks(model).blocks
    depth = len(blocks)
    device = model_device(model)
    influence = torch.zeros(depth, dtype=torch.float64)
    angles = torch.zeros(depth + 1, depth + 1, dtype=torch.float64)  # summed over sequences
    last: list[torch.Tensor | None] = [None] * (depth + 1)  # h_0 .. h_depth at the last real tokens
    current: dict[str, torch.Tensor] = {}  # the batch's mask and last positions, read by the hooks

    def recorder(index: int):
        def record(module, args, kwargs, output):
            x, y = block_input(args, kwargs).float(), block_output(output).float()
            cos = F.cosine_similarity(x, y, dim=-1)
            influence[index] += ((1 - cos) * current["mask"]).sum().double().cpu()
            rows = torch.arange(len(y), device=y.device)
            if index == 0:
                last[0] = x[rows, current["last"]]
            last[index + 1] = y[rows, current["last"]]

        return record

    handles = [block.register_forward_hook(recorder(i), with_kwargs=True) for i, block in enumerate(blocks)]
    tokens = sequences = 0
    try:
        with torch.no_grad():
            for batch in progress_bar(batches, desc="hidden states", unit="batch", enabled=progress):
                mask = batch.attention_mask.to(device)
                current.update(mask=mask.float(), last=last_real_index(mask))
                body(model)(input_ids=batch.input_ids.to(device), attention_mask=mask, use_cache=False)
                unit = F.normalize(torch.stack(last).double(), dim=-1)  # (depth + 1, batch, hidden)
                cos = torch.einsum("ibh,jbh->bij", unit, unit).clamp(-1.0, 1.0)
                angles += (torch.arccos(cos) / math.pi).sum(0).cpu()
                tokens += int(mask.sum())
                sequences += len(mask)
    finally:
        for handle in handles:
            handle.remove()
    return HiddenStateMeasures(
        block_influence=(influence / tokens).tolist(),
        angular_distance={n: [float(angles[i, i + n]) / sequences for i in range(depth - n + 1)] for n in block_sizes},
    )
