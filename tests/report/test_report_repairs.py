"""The report's healing comparison: repairs are rows of their own (never picked on dev), each cell says how
much of the plain full-depth accuracy it keeps, a paired table gives each repair's gain over plain first-k seed by
seed, and a cost table gives training seconds and trainable weights."""

from layercut.report.markdown import write_report
from layercut.report.tables import build_tables
from layercut.run.record import RunRecord
from layercut.sweep.store import ResultStore
from tests.sweep import fake_record


def repaired(key, layers, seed, accuracy, dev, trainable, train_seconds=1.0, **repair):
    record = fake_record(key, layers, "a", seed, accuracy, dev)
    record["config"].update(repair)
    record["parameters"]["trainable"] = trainable
    record["timing"]["train_seconds"] = train_seconds
    return record


def test_repairs_side_by_side_with_share_of_full_depth_and_cost(tmp_path):
    store = ResultStore(tmp_path)
    records = [
        repaired("p1", 1, 0, 0.40, 0.5, 1_500_000),
        repaired("p2", 1, 1, 0.60, 0.5, 1_500_000),
        repaired("f1", 4, 0, 0.80, 0.9, 6_000_000, train_seconds=9.0),
        # a better dev than the plain runs: were repairs settings, the plain cell would show these
        repaired("b1", 1, 0, 0.70, 0.9, 1_500_000, train_seconds=2.0, bridge="lstsq"),
        repaired("b2", 1, 1, 0.70, 0.9, 1_500_000, train_seconds=2.0, bridge="lstsq"),
        repaired("l1", 1, 0, 0.30, 0.4, 200_000, train_layers="last:1"),
    ]
    records[3]["healing"] = records[4]["healing"] = {"bridge": {"seconds": 3.0}, "teacher": None}
    for record in records:
        store.save(RunRecord(record))
    report = write_report(tmp_path).report.read_text()

    expected = [
        "## m: LM head, a: repairs of the cut model compared",
        "accuracy kept (the reference: full fine-tuning, all layers, 80.0 (n=1))",
        "| full fine-tuning | 50.0 ± 14.1 (62%) |",
        "| full fine-tuning, lstsq bridge | 70.0 ± 0.0 (88%) |",
        "| full fine-tuning, training only the last:1 blocks | 30.0 (n=1) (38%) |",
        "Best per layer count: 1 layers: full fine-tuning, lstsq bridge (70.0).",
        # paired by seed: the bridge gains 30 points at seed 0 and 10 at seed 1; last:1 loses 10 at seed 0
        "Against full fine-tuning at the same seed",
        "| full fine-tuning, lstsq bridge | +20.0 ± 14.1 (2 of 2 ahead) |",
        "| full fine-tuning, training only the last:1 blocks | -10.0 (0 of 1 ahead) |",
        "| full fine-tuning | 1 s / 1.5M |",
        "| full fine-tuning, lstsq bridge | 2 s + 3 s / 1.5M |",
        "| full fine-tuning, training only the last:1 blocks | 1 s / 200k |",
    ]
    assert [line for line in expected if line not in report] == []
    plain = next(t for t in build_tables(records) if not t.repaired)
    assert plain.rows[0].cells["a"].accuracies == [0.40, 0.60]


def test_no_repairs_no_comparison(tmp_path):
    store = ResultStore(tmp_path)
    for record in (fake_record("k1", 1, "a", 0, 0.5, 0.8), fake_record("k2", 4, "a", 0, 0.8, 0.9)):
        store.save(RunRecord(record))
    assert "repairs of the cut model" not in write_report(tmp_path).report.read_text()


def test_first_as_a_strategy_shares_the_table_of_first_k(tmp_path):
    """A healing sweep's `strategies: [first]` runs and a `layers: [all]` reference make one table."""
    chosen = fake_record("s1", 1, "a", 0, 0.5, 0.8)
    chosen["config"].update(layers="all", keep_strategy="first", keep_count=1)
    [table] = build_tables([chosen, fake_record("f1", 4, "a", 0, 0.8, 0.9)])
    assert [row.kept for row in table.rows] == [1, 4] and table.full_depth.kept == 4
