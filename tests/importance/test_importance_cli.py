"""`layercut rank` and `layercut cut --keep-strategy`, end to end on a tiny local model folder."""

import json

import pytest
import torch
from safetensors.torch import load_file

from layercut.cli.main import main
from layercut.importance import LayerRanking
from tests.tiny_models import CALIBRATION_TEXTS

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = CALIBRATION_TEXTS * 4
SMALL = ["--samples", "4", "--max-length", "16"]


@pytest.fixture
def calibration(tmp_path):
    path = tmp_path / "calibration.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return str(path)


def test_rank_prints_saves_and_plots(tiny_llama_folder, calibration, tmp_path, capsys):
    out, plot = tmp_path / "ranking.json", tmp_path / "plots" / "ranking.png"
    code = main(
        [
            "rank",
            str(tiny_llama_folder),
            "--calibration",
            calibration,
            *SMALL,
            "--counts",
            "1",
            "2",
            "-o",
            str(out),
            "--plot",
            str(plot),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    for heading in ("BI", "angular n=1", "loss without", "greedy step", "K=1", "K=2", "spaced", "greedy"):
        assert heading in table
    ranking = LayerRanking.load(out)
    assert ranking.depth == 4 and ranking.calibration["sequences"] == 4
    assert set(ranking.seconds) == {"bi_angular", "loss", "greedy"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert (
        main(
            [
                "rank",
                str(tiny_llama_folder),
                "--calibration",
                calibration,
                *SMALL,
                "--measures",
                "bi",
                "--block-size",
                "2",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["removal_loss"] is None and list(data["angular_distance"]) == ["2"]
    assert set(data["kept"]["angular"]) == {"2", "4"}  # runs of 2 dropped, or none


def test_a_saved_ranking_gives_the_same_cut_as_ranking_afresh(tiny_llama_folder, calibration, tmp_path):
    ranking = tmp_path / "ranking.json"
    # `cut` ranks on its default calibration size; rank with the same to compare like with like.
    assert (
        main(["rank", str(tiny_llama_folder), "--calibration", calibration, "--measures", "bi", "-o", str(ranking)])
        == 0
    )
    from_file, fresh = tmp_path / "from-file", tmp_path / "fresh"
    assert (
        main(
            [
                "cut",
                str(tiny_llama_folder),
                "--keep-strategy",
                "bi",
                "--keep-count",
                "2",
                "--ranking",
                str(ranking),
                "-o",
                str(from_file),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "cut",
                str(tiny_llama_folder),
                "--keep-strategy",
                "bi",
                "--keep-count",
                "2",
                "--calibration",
                calibration,
                "-o",
                str(fresh),
            ]
        )
        == 0
    )
    records = [json.loads((folder / "layercut.json").read_text()) for folder in (from_file, fresh)]
    kept = LayerRanking.load(ranking).keep("bi", 2)
    assert records[0]["kept_layers"] == records[1]["kept_layers"] == kept
    assert records[0]["layer_strategy"]["strategy"] == "bi" and records[0]["layer_strategy"]["kept_layers"] == kept
    weights = [load_file(folder / "model.safetensors") for folder in (from_file, fresh)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_cut_by_reference_strategy_needs_no_calibration(tiny_llama_folder, tmp_path, capsys):
    out = tmp_path / "spaced"
    assert main(["cut", str(tiny_llama_folder), "--keep-strategy", "spaced", "--keep-count", "2", "-o", str(out)]) == 0
    record = json.loads((out / "layercut.json").read_text())
    assert record["kept_layers"] == [0, 3] and record["selection"] == "0,3"
    assert record["layer_strategy"] == {"strategy": "spaced", "count": 2, "kept_layers": [0, 3]}
    assert "kept layers [0, 3]" in capsys.readouterr().out


def test_existing_selection_flags_still_work(tiny_llama_folder, tmp_path):
    assert main(["cut", str(tiny_llama_folder), "--keep-first", "2", "-o", str(tmp_path / "first")]) == 0
    assert json.loads((tmp_path / "first" / "layercut.json").read_text())["kept_layers"] == [0, 1]


BAD = {
    "count zero": (["rank", "{model}", "--calibration", "{text}", "--counts", "0"], "choose a count from 1 to 4"),
    "count above depth": (
        ["cut", "{model}", "--keep-strategy", "first", "--keep-count", "5", "-o", "{out}"],
        "choose a count from 1 to 4",
    ),
    "block size above depth - 1": (["rank", "{model}", "--calibration", "{text}", "--block-size", "4"], "outside 1..3"),
    "block size zero": (["rank", "{model}", "--calibration", "{text}", "--block-size", "0"], "outside 1..3"),
    "block size not a number": (
        ["rank", "{model}", "--calibration", "{text}", "--block-size", "two"],
        "not a whole number",
    ),
    "empty calibration": (["rank", "{model}", "--calibration", "{empty}"], "has no text"),
    "calibration folder": (["rank", "{model}", "--calibration", "{folder}"], "is a folder"),
    "no such calibration": (["rank", "{model}", "--calibration", "{folder}/missing.txt"], "is not a file"),
    "unknown measure": (
        ["rank", "{model}", "--calibration", "{text}", "--measures", "bi,fisher"],
        "unknown measure 'fisher'",
    ),
    "bad plot name": (
        ["rank", "{model}", "--calibration", "{text}", "--plot", "{folder}/p.gif"],
        "end the file name with",
    ),
    "unknown strategy": (
        ["cut", "{model}", "--keep-strategy", "middle", "--keep-count", "2", "-o", "{out}"],
        "unknown layer strategy",
    ),
    "strategy without count": (["cut", "{model}", "--keep-strategy", "bi", "-o", "{out}"], "needs --keep-count"),
    "strategy without text": (
        ["cut", "{model}", "--keep-strategy", "greedy", "--keep-count", "2", "-o", "{out}"],
        "needs --calibration",
    ),
    "count without strategy": (
        ["cut", "{model}", "--keep-first", "2", "--keep-count", "2", "-o", "{out}"],
        "only works with --keep-strategy",
    ),
    "ranking of another depth": (
        ["cut", "{model}", "--keep-strategy", "bi", "--keep-count", "2", "--ranking", "{deep}", "-o", "{out}"],
        "30-layer model",
    ),
    "unreadable ranking": (
        ["cut", "{model}", "--keep-strategy", "bi", "--keep-count", "2", "--ranking", "{text}", "-o", "{out}"],
        "cannot read the ranking",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_without_traceback(case, tiny_llama_folder, calibration, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n")
    deep = LayerRanking("other", 30, {"source": "x"}, block_influence=[0.5] * 30)
    deep.save(tmp_path / "deep.json")
    values = dict(
        model=tiny_llama_folder,
        text=calibration,
        empty=tmp_path / "empty.txt",
        folder=tmp_path,
        out=tmp_path / "out",
        deep=tmp_path / "deep.json",
    )
    argv, message = BAD[case]
    assert main([arg.format(**values) for arg in argv]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("layercut: error: ") and message in error
    assert not (tmp_path / "out").exists()
