"""More of the bad-input catalogue (issue #27): model code run without asking, text files that are not UTF-8,
a full disk, sweeps that failed only after runs had started, and rough edges. Each case ends in one line
`layercut: error: ...`, exit code 2, no traceback, and leaves no file behind; it reuses the world of
`test_bad_inputs.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from layercut.cli.main import main
from tests.cli import assert_one_line_error, run_cli
from tests.test_bad_inputs import _edit_config, _snapshot, world  # noqa: F401  (world is a fixture)

# A module of model code that leaves a mark when it runs (on import, as transformers imports it).
MARKING_CODE = """
from pathlib import Path
Path({marker!r}).write_text("the model's own code ran")
from transformers import LlamaConfig, LlamaForCausalLM
class XConfig(LlamaConfig):
    model_type = "xmodel"
class XModel(LlamaForCausalLM):
    config_class = XConfig
"""


def test_predict_never_runs_the_models_own_code_even_when_stdin_says_yes(world, tmp_path):
    folder = tmp_path / "custom-adapted"
    shutil.copytree(world["adapted_run"] / "model", folder)
    marker = tmp_path / "code-ran"
    for name in ("configuration_x.py", "modeling_x.py"):
        (folder / name).write_text(MARKING_CODE.format(marker=str(marker)))
    _edit_config(folder, model_type="xmodel",
                 auto_map={"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"})
    result = run_cli("predict", folder, "good movie", input="y\n", timeout=300)
    assert_one_line_error(result, "--trust-remote-code")
    assert not marker.exists()
