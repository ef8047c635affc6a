"""The plot's axes: counts in k and M with separators, a log-scale loss axis with round labels."""

from __future__ import annotations

from charlstm_gui.widgets.axes import CountAxis, LossAxis


def test_count_axis_uses_k_and_m_with_separators():
    axis = CountAxis("bottom")
    assert axis.tickStrings([0, 100_000, 200_000], 1.0, 100_000) == ["0", "100k", "200k"]
    assert axis.tickStrings([1_000_000, 1_500_000], 1.0, 500_000) == ["1.0M", "1.5M"]
    assert axis.tickStrings([2_000, 2_500], 1.0, 500) == ["2,000", "2,500"]
    assert axis.tickStrings([0, 0.5, 1], 1.0, 0.5) == ["0.0", "0.5", "1.0"]  # an empty plot


def test_log_loss_axis_labels_round_values(qtbot, window):
    plot = window.plot
    assert isinstance(plot.plot.getAxis("left"), LossAxis)
    assert isinstance(plot.plot.getAxis("bottom"), CountAxis)
    plot.set_log_scale(True)
    axis = plot.plot.getAxis("left")
    import math

    levels = axis.tickValues(math.log10(1.2), math.log10(4.2), 400)
    major = levels[0][1]
    labels = axis.tickStrings(major, 1.0, levels[0][0])
    assert len(labels) >= 6, labels  # pyqtgraph's own log axis gave 4
    assert labels[:3] == ["1.5", "2", "2.5"]
