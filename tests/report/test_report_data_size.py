"""The report's learning curves over K: each layer count's accuracy at every K, as a share of that K's own
full-depth accuracy; one line per K in the accuracy-vs-layers plot's legend."""

from layercut.report.markdown import write_report
from layercut.run.record import RunRecord
from layercut.sweep.store import ResultStore
from tests.sweep import fake_record


def at_k(key, layers, seed, accuracy, shots):
    record = fake_record(key, layers, "a", seed, accuracy, 0.5)
    record["config"]["shots"] = shots
    return record


def test_each_k_against_its_own_full_depth(tmp_path):
    store = ResultStore(tmp_path)
    for record in (
        at_k("a1", 1, 0, 0.30, 8),
        at_k("a2", 1, 1, 0.50, 8),
        at_k("a3", 4, 0, 0.80, 8),
        at_k("b1", 1, 0, 0.60, 64),
        at_k("b2", 4, 0, 0.75, 64),
    ):
        store.save(RunRecord(record))
    for record in (fake_record("c1", 1, "b", 0, 0.5, 0.5), fake_record("c2", 4, "b", 0, 0.9, 0.5)):  # task b: one K
        store.save(RunRecord(record))
    files = write_report(tmp_path)
    report = files.report.read_text()

    assert "## m: LM head, full fine-tuning, a: data size" in report
    assert "| Layers kept | K=8 | K=64 |" in report
    assert "| 1 | 40.0 ± 14.1 (50%) | 60.0 (n=1) (80%) |" in report
    assert "| 4 | 80.0 (n=1) | 75.0 (n=1) |" in report  # full depth: no share of itself
    assert "b: data size" not in report
    assert (tmp_path / "plots" / "accuracy_vs_layers_m.png").exists()


def test_one_k_no_data_size_table(tmp_path):
    store = ResultStore(tmp_path)
    for record in (at_k("a1", 1, 0, 0.30, 8), at_k("a3", 4, 0, 0.80, 8)):
        store.save(RunRecord(record))
    assert "data size" not in write_report(tmp_path).report.read_text()


def test_accuracy_plot_names_each_line_once_in_one_colour(tmp_path):
    """Two tasks and two K: one legend under the panels, one entry per K, and a K's line has the same colour in
    every panel (per-panel legends hid the lines once a panel held many)."""
    from layercut.report.plots import _accuracy_vs_layers
    from layercut.report.tables import Cell, build_tables

    records = []
    for shots in (8, 64):
        for task in ("a", "b"):
            for layers in (1, 4):
                record = fake_record(f"{task}{shots}{layers}", layers, task, 0, 0.5, 0.5)
                record["config"]["shots"] = shots
                records.append(record)
    tables = build_tables(records)
    references = [{"a": Cell([0.3], {}, None), "b": Cell([0.4], {}, None)} for _ in tables]  # bag-of-words per K
    figure = _accuracy_vs_layers("m", tables, ("shots",), references)

    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        *(table.label(("shots",)) for table in tables),
        "bag-of-words, 8 shots",
        "bag-of-words, 64 shots",
    ]
    assert not any(axes.get_legend() for axes in figure.axes)
    colours = [[line.get_color() for line in axes.get_lines() if line.get_linestyle() == "-"] for axes in figure.axes]
    assert len(colours) == 2 and colours[0] == colours[1] and len(set(colours[0])) == 2
    styles = [
        [line.get_linestyle() for line in axes.get_lines() if line.get_linestyle() != "-"] for axes in figure.axes
    ]
    assert styles[0] == styles[1] and len(set(styles[0])) == 2  # one dashed reference per K, alike in each panel
