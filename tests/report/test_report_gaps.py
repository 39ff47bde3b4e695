"""Under each table with a full-depth row: each layer count's gap to it, in points and in seed spreads."""

from layercut.report.markdown import write_report
from layercut.run.record import RunRecord
from layercut.sweep.store import ResultStore
from tests.sweep import fake_record


def test_gap_in_points_and_seed_spreads(tmp_path):
    store = ResultStore(tmp_path)
    records = [
        fake_record("a1", 1, "a", 0, 0.40, 0.5),
        fake_record("a2", 1, "a", 1, 0.50, 0.5),  # 45.0 ± 7.1
        fake_record("f1", 4, "a", 0, 0.80, 0.9),
        fake_record("f2", 4, "a", 1, 0.82, 0.9),  # 81.0 ± 1.4
        fake_record("m1", 2, "a", 0, 0.75, 0.5),
        fake_record("m2", 2, "a", 1, 0.85, 0.5),  # 80.0 ± 7.1
        fake_record("b1", 1, "b", 0, 0.40, 0.5),
        fake_record("b2", 4, "b", 0, 0.80, 0.9),
    ]  # one seed each
    for record in records:
        store.save(RunRecord(record))
    report = write_report(tmp_path).report.read_text()
    assert "| Layers kept | a | b |" in report
    assert "| 1 | 36.0 (5.1×) | – |" in report
    assert "| 2 | 1.0 (*matches*) | – |" in report


def test_no_gap_table_without_two_seeds_on_both_sides(tmp_path):
    store = ResultStore(tmp_path)
    for record in (
        fake_record("a1", 1, "a", 0, 0.40, 0.5),
        fake_record("a2", 1, "a", 1, 0.50, 0.5),
        fake_record("f1", 4, "a", 0, 0.80, 0.9),
    ):
        store.save(RunRecord(record))
    assert "Gap to full depth" not in write_report(tmp_path).report.read_text()


def test_fewest_layers_keeping_90_and_95_percent(tmp_path):
    """Task a: 2 layers keep 80.0 / 81.0 = 98.8% of full depth; 1 layer 55.6%. Task b: 1 layer keeps 90% exactly,
    not 95%, and full depth is the first to keep 95%."""
    store = ResultStore(tmp_path)
    for record in (
        fake_record("a1", 1, "a", 0, 0.45, 0.5),
        fake_record("a2", 2, "a", 0, 0.80, 0.5),
        fake_record("af", 4, "a", 0, 0.81, 0.9),
        fake_record("b1", 1, "b", 0, 0.72, 0.5),
        fake_record("bf", 4, "b", 0, 0.80, 0.9),
    ):
        store.save(RunRecord(record))
    report = write_report(tmp_path).report.read_text()
    assert "- a: 90%: 2; 95%: 2 (of the depths run: 1, 2, 4)" in report
    assert "- b: 90%: 1; 95%: 4 (of the depths run: 1, 4)" in report


def test_user_named_tasks_cannot_break_the_report_or_run_in_a_spreadsheet(tmp_path):
    """A task name from a user's file with `|` and HTML is written escaped; a runs.csv cell that a spreadsheet would
    run as a formula (=, +, -, @) starts with ' instead; numbers stay numbers."""
    import csv

    store = ResultStore(tmp_path)
    for record in (
        fake_record("a1", 1, "x|<script>alert(1)</script>", 0, 0.4, 0.5),
        fake_record("a2", 4, "x|<script>alert(1)</script>", 0, 0.8, 0.9),
        fake_record("b1", 1, '=HYPERLINK("http://evil")', 0, 0.4, 0.5),
    ):
        store.save(RunRecord(record))
    files = write_report(tmp_path)
    report = files.report.read_text()
    assert "<script>" not in report and "x\\|&lt;script&gt;alert(1)&lt;/script&gt;" in report
    rows = list(csv.DictReader(files.runs_csv.open()))
    assert {row["task"] for row in rows} == {"x|<script>alert(1)</script>", '\'=HYPERLINK("http://evil")'}
    assert all(not row[name].startswith(("=", "+", "-", "@")) for row in rows for name in row)


def test_runs_written_before_and_after_a_setting_existed_share_a_cell(tmp_path):
    """A record from before a setting existed lacks it; the report reads it as the default (it once raised KeyError)."""
    store = ResultStore(tmp_path)
    newer = fake_record("n", 1, "a", 1, 0.6, 0.5)
    newer["config"]["allow_pickle"] = False  # the default, written by a later version
    for record in (fake_record("o", 1, "a", 0, 0.4, 0.5), newer, fake_record("f", 4, "a", 0, 0.8, 0.9)):
        store.save(RunRecord(record))
    assert "| 1 | 1.5M (25.0%) | 500.0k | 50.0 ± 14.1 |" in write_report(tmp_path).report.read_text()


def test_float32_runs_asked_as_auto_or_float32_are_one_setting(tmp_path):
    """A store's runs from before precision was recorded (dtype auto, float32 on CPU) and later ones pinned to
    float32 are the same computation: one cell, no 'dtype=' among the settings picked."""
    store = ResultStore(tmp_path)
    pinned = fake_record("p", 1, "a", 1, 0.6, 0.5, learning_rate=3e-3)
    pinned["config"]["dtype"] = "float32"
    pinned["precision"] = {"asked": "float32", "resolved": "float32", "used": "float32", "reason": "asked"}
    older = fake_record("o", 1, "a", 0, 0.4, 0.5)
    older["config"]["dtype"] = "auto"
    for record in (older, pinned, fake_record("f", 4, "a", 0, 0.8, 0.9)):
        store.save(RunRecord(record))
    report = write_report(tmp_path).report.read_text()
    assert "dtype=" not in report and "learning_rate=0.001 (dev 50.0; also tried learning_rate=0.003: 50.0)" in report
