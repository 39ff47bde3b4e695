"""Under each table: the setting dev picked per cell, the others tried, and a mark where the pick is at an edge."""

from layercut.report.markdown import write_report
from layercut.run.record import RunRecord
from layercut.sweep.store import ResultStore
from tests.sweep import fake_record


def _report(tmp_path, runs):
    store = ResultStore(tmp_path)
    for key, layers, rate, dev in runs:
        store.save(RunRecord(fake_record(key, layers, "a", 0, 0.5, dev, learning_rate=rate)))
    return write_report(tmp_path).report.read_text()


def test_a_pick_at_the_top_or_bottom_of_the_rates_tried_is_marked_and_an_interior_one_is_not(tmp_path):
    report = _report(
        tmp_path,
        [
            ("t1", 1, 1e-4, 0.40),
            ("t2", 1, 1e-3, 0.60),  # top
            ("b1", 2, 1e-4, 0.70),
            ("b2", 2, 1e-3, 0.50),  # bottom
            ("i1", 3, 1e-4, 0.50),
            ("i2", 3, 4e-4, 0.80),
            ("i3", 3, 1e-3, 0.60),  # interior
        ],
    )
    assert (
        "- layers 1, a: learning_rate=0.001 (dev 60.0; also tried learning_rate=0.0001: 40.0) "
        "**at the top edge of the values tried**\n" in report
    )
    assert (
        "- layers 2, a: learning_rate=0.0001 (dev 70.0; also tried learning_rate=0.001: 50.0) **at the bottom" in report
    )
    assert (
        "layers 3, a: learning_rate=0.0004 (dev 80.0; also tried learning_rate=0.0001: 50.0; learning_rate=0.001: 60.0)\n"
        in report
    )


def test_an_edge_where_every_rate_ties_on_dev_says_so(tmp_path):
    """Depth 0 learning only the majority class at every rate: the pick sits at an edge, but no rate is better."""
    report = _report(tmp_path, [("z1", 1, 1e-4, 0.275), ("z2", 1, 4e-4, 0.275), ("z3", 1, 1e-3, 0.275)])
    assert "**at the bottom edge of the values tried**: every value tried ties on dev, so none does better" in report
    near = _report(tmp_path / "near", [("n1", 1, 1e-4, 0.60), ("n2", 1, 1e-3, 0.595)])
    assert "**at the bottom edge of the values tried**\n" in near and "ties on dev" not in near
