"""The Inspect tab, the loss plot's reference lines and the memorisation meter, in the real window.

A tiny model (H=16, L=1) trains for a few steps on a generated text; hand-made analyses pin down
what the view shows for known activations.
"""

from __future__ import annotations

import html

import numpy as np
import pytest
from charlstm_core.insight.html import visible
from charlstm_core.insight.inspect import Analysis
from PySide6.QtCore import QPoint

from charlstm_gui.controller.controller import State
from charlstm_gui.views.inspect_analysis import InspectResult
from charlstm_gui.widgets.passage_text import display_text, surprise_levels, value_levels

from .helpers import small_text

QUOTED = 'she said "yes" and he said "no" then "maybe" ok\n'


def load(qtbot, w, path):
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(path))


def train(qtbot, w, steps=30):
    w.form.set_values({"duration": steps})
    w.train_new()
    assert w.ctl.state is State.STARTING, w.last_message
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)


@pytest.fixture
def trained(qtbot, window, tmp_path):
    """The window after 30 training steps with evaluations at 10, 20, 30, the Inspect tab
    showing the newest analysis."""
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt", extra="\n" + QUOTED * 30))
    train(qtbot, w)
    qtbot.waitUntil(lambda: w.inspect.result is not None and w.inspect.result.step == 30)
    qtbot.waitUntil(lambda: not w.inspect.analyses.running)
    return w


def char_point(view, i):
    """Viewport point in the middle of passage character ``i``."""
    pos = int(np.flatnonzero(view.text.index == i)[0])
    cursor = view.text.textCursor()
    cursor.setPosition(pos)
    left = view.text.cursorRect(cursor)
    cursor.setPosition(pos + 1)
    right = view.text.cursorRect(cursor)
    return QPoint((left.left() + right.left()) // 2, left.center().y())


def test_timelapse_keeps_one_bits_array_per_evaluation(trained):
    w = trained
    v = w.inspect
    evaluated = [int(s) for s in w.ctl.history.val.step]
    assert evaluated == [10, 20, 30]
    assert [step for step, _ in v.timelapse] == [0, *evaluated]  # from the untrained model on
    n = len(v.passage)
    assert all(bits.shape == (n - 1,) for _, bits in v.timelapse)
    assert not np.array_equal(v.timelapse[0][1], v.timelapse[-1][1])  # the model learned
    assert v.time.maximum() == 3 and v.time.value() == 3
    v.time.setValue(1)  # replay the first evaluation
    expected = surprise_levels(np.r_[np.nan, v.timelapse[1][1]])
    levels, _ = v.char_levels()
    assert np.array_equal(levels, expected)
    assert "step 10" in v.time_label.text()
    # the document's colours follow: the unit of character 5 has the first evaluation's level
    pos = int(np.flatnonzero(v.text.index == 5)[0])
    assert v.text.colours.levels[pos] == expected[5]


def test_hover_shows_the_top_five_and_the_character_that_came(trained):
    v = trained.inspect
    a = v.result.analysis
    i = v.passage.index(" ", 3)  # a space: it must be shown visibly
    tip = v.text.tooltip_at(char_point(v, i))
    assert tip == v.tooltip(i)
    assert tip.count("<tr>") == 5
    for ch, p in a.top_chars(i - 1):
        assert f"<code>{html.escape(visible(ch))}</code></td><td align='right'>{p:.1%}" in tip
    assert "Came: <b><code>␣ (space)</code></b>" in tip
    assert f"{2.0 ** -a.bits[i - 1]:.2%}" in tip
    j = v.passage.index("\n")  # a newline is shown as ↵ and can be hovered too
    assert "⏎ (newline)" in v.text.tooltip_at(char_point(v, j))
    assert "first character" in v.tooltip(0)


def test_changing_the_unit_recolours_the_passage(trained):
    v = trained.inspect
    values = v.result.analysis.values("c")
    v.mode.setCurrentIndex(1)  # cell value tanh(c)
    v.unit.setValue(0)
    first = v.text.colours.levels.copy()
    shown = display_text(v.passage)[1]
    assert np.array_equal(first[shown >= 0], value_levels(values[0, :, 0])[shown[shown >= 0]])
    u = int(np.argmax(np.abs(values[0] - values[0, :, :1]).sum(axis=0)))  # differs most from 0
    v.unit.setValue(u)
    assert v.unit_slider.value() == u
    after = v.text.colours.levels
    assert not np.array_equal(first, after)
    assert np.array_equal(after[shown >= 0], value_levels(values[0, :, u])[shown[shown >= 0]])


def test_a_found_unit_is_shown_on_click(trained):
    v = trained.inspect
    top = next(
        v.found.topLevelItem(k)
        for k in range(v.found.topLevelItemCount())
        if v.found.topLevelItem(k).childCount()
    )
    child = top.child(0)
    kind, layer, unit = child.data(0, 256)
    v.found.itemClicked.emit(child, 0)
    assert v.mode_kind() == kind and v.unit.value() == unit and v.layer.value() == layer + 1
    v._fill_found()  # a live refresh keeps the unit on show selected
    assert tuple(v.found.currentItem().data(0, 256)) == (kind, layer, unit)


def hand_made(text, unit_on):
    """An Analysis of ``text`` by a model of 1 layer of 4 units whose unit 2 has tanh(c) = 0.8
    where ``unit_on`` is True and -0.8 elsewhere (the others are 0), and whose unit 1's forget
    gate is always open."""
    n = len(text)
    c = np.zeros((1, n, 4), np.float32)
    c[0, :, 2] = np.where(unit_on, np.arctanh(0.8), -np.arctanh(0.8))
    chars = tuple(sorted(set(text)))
    ids = np.array([chars.index(ch) for ch in text])
    k = min(5, len(chars))
    gates = np.full((1, n, 3, 4), 0.5, np.float32)
    gates[0, :, 1, 1] = 0.95  # unit 1's forget gate is always open (right-saturated)
    return Analysis(
        text,
        chars,
        ids,
        np.ones(n - 1),
        np.tile(np.arange(k), (n - 1, 1)),
        np.full((n - 1, k), 1.0 / k),
        np.zeros((1, n, 4), np.float32),
        c,
        gates,
    )


def test_select_and_match_finds_the_unit_and_its_other_places(qtbot, window):
    from charlstm_core.insight.inspect import detectors, gate_saturation, rank_units

    v = window.inspect
    text = QUOTED
    inside = detectors(text)["double quotes"].astype(bool)
    a = hand_made(text, inside)
    v.source.setCurrentIndex(1)
    v.own_text.setPlainText(text)
    v.passage = text
    v.text.show_text(text)
    ranking = {kind: rank_units(a, detectors(text), kind) for kind in ("c", "h")}
    v._show_result(InspectResult(0, "a hand-made model", a, ranking, gate_saturation(a)))
    assert v.found.topLevelItem(0).child(0).text(0) == "layer 1 unit 2"  # double quotes
    assert v.layer.isEnabled()  # in surprise mode too: it picks the gate scatter's layer
    v.side.setCurrentWidget(v.gates)  # the scatter is drawn when its tab opens
    x, y = v.gate_points[1].getData()  # forget gates: unit 1's always open, the others half
    assert list(x) == [0.0] * 4 and list(y) == [0.0, 1.0, 0.0, 0.0]
    v.mode.setCurrentIndex(1)
    first = text.index('"yes"')
    cursor = v.text.textCursor()  # select "yes (inside the first quotes), as a user drags
    cursor.setPosition(first)
    cursor.setPosition(first + 4, cursor.MoveMode.KeepAnchor)
    v.text.setTextCursor(cursor)
    v.match_button.click()
    assert v.match_units.count() == 1
    assert v.match_units.item(0).text().startswith("layer 1 unit 2")
    other = [
        (text.index('"no'), text.index('no"') + 2),
        (text.index('"may'), text.index('be"') + 2),
    ]
    assert list(v.match_spans) == other
    for s, e in other:
        assert v._match_mask[s:e].all()
    assert not v._match_mask[:first].any()
    levels = v.text.colours.levels
    assert len(v.text.colours.formats) > 2 * 21  # the matched places have their own formats
    assert levels[text.index('"no') + 1] >= 21


def test_reference_lines_on_the_plot_and_hidden_from_the_view_menu(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    qtbot.waitUntil(lambda: len(w.plot.references) == 5, timeout=10_000)
    labels = [label for label, *_ in w.plot.references]
    assert labels == ["gzip -9", "bz2 -9", "xz -9", "unigram", "bigram"]
    action = w.actions["reference_lines"]
    view_menu = next(m for m in w.menuBar().actions() if m.text() == "&View").menu()
    assert action in view_menu.actions()
    assert action.isChecked() and all(item.isVisible() for *_, item in w.plot.references)
    action.trigger()
    assert not any(item.isVisible() for *_, item in w.plot.references)
    action.trigger()
    assert all(item.isVisible() for *_, item in w.plot.references)
    assert "first" not in w.plot.references[0][3].toolTip()  # the whole text was measured


def test_reference_lines_of_a_long_text_say_they_measured_a_prefix(
    qtbot, window, tmp_path, monkeypatch
):
    import charlstm_gui.views.meters as meters

    monkeypatch.setattr(meters, "YARDSTICK_VAL_CHARS", 50)  # "long": longer than 50 characters
    load(qtbot, window, small_text(tmp_path / "t.txt"))
    qtbot.waitUntil(lambda: len(window.plot.references) == 5, timeout=10_000)
    tips = [item.toolTip() for *_, item in window.plot.references]
    assert all("(first 50 characters)" in tip for tip in tips[:3])  # the compressors
    assert not any("first" in tip for tip in tips[3:])  # the entropies counted all of it


def test_copied_spans_are_highlighted_in_samples_and_generate(qtbot, window, tmp_path):
    w = window
    lines = [f"line {i:03d} of a text with some words in it, number {i}" for i in range(200)]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load(qtbot, w, path)
    qtbot.waitUntil(lambda: w.meters.finder is not None, timeout=10_000)
    copied = lines[42]  # 1-based line 43 of the text, all of it in the training part
    sample = "zq" * 10 + copied + "xq" * 10
    w.samples.add_sample(10, 2.0, 0.8, sample)
    selections = w.samples.extraSelections()
    assert len(selections) == 1
    start = w.samples.toPlainText().index(sample) + 20
    c = selections[0].cursor
    assert (c.selectionStart(), c.selectionEnd()) == (start, start + len(copied))
    assert "line 43 of the training text" in w.meters.sample_marks.tooltip_at(start + 3)
    share = len(copied) / len(sample)
    expected = f"{share:.0%} copied verbatim, longest {len(copied)} characters"
    assert expected in w.samples.meter.text()

    w.samples.add_sample(20, 2.0, 0.8, "qz" * 30)  # nothing copied: the first marks stay
    assert len(w.samples.extraSelections()) == 1
    assert "0% copied" in w.samples.meter.text()

    w.ctl.generation_started.emit("a test")
    w.gen.started("a test", "")
    w.gen.append(sample)
    w.ctl.generation_finished.emit(True)
    selections = w.gen.output.extraSelections()
    assert len(selections) == 1 and selections[0].cursor.selectedText() == copied
    assert w.gen.meter.text() == expected

    w.gen.copy_min.setValue(len(copied) + 1)  # longer than the copy: rebuilt, nothing found
    qtbot.waitUntil(lambda: w.meters.finder is not None, timeout=10_000)
    assert w.meters.finder.min_chars == len(copied) + 1
    assert w.gen.output.extraSelections() == [] and "0% copied" in w.gen.meter.text()
    assert w.samples.extraSelections() == []  # the samples are checked again with the new N
    assert "0% copied" in w.samples.meter.text()
    w.gen.copy_min.setValue(20)
    qtbot.waitUntil(lambda: len(w.samples.extraSelections()) == 1, timeout=10_000)
    w.samples.clear_samples()
    w.samples.add_sample(30, 2.0, 0.8, copied)  # a sample that is all copy, in a cleared pane
    selections = w.samples.extraSelections()
    assert len(selections) == 1 and selections[0].cursor.selectedText() == copied
    assert "100% copied verbatim" in w.samples.meter.text()
    w.samples.add_sample(40, 2.0, 0.8, "qz" * 30)  # appended right after the highlight's end
    selections = w.samples.extraSelections()
    assert len(selections) == 1 and selections[0].cursor.selectedText() == copied


def test_indentation_is_not_highlighted_as_a_copy_and_the_meter_says_the_rule(
    qtbot, window, tmp_path
):
    w = window
    lines = [" " * 28 + f"value_{i:03d} = compute(item, {i})" for i in range(300)]
    path = tmp_path / "t.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load(qtbot, w, path)
    qtbot.waitUntil(lambda: w.meters.finder is not None, timeout=10_000)
    tip = w.samples.meter.toolTip()
    assert "indentation" in tip and f"{w.meters.finder.index.min_bits:.0f} bits" in tip
    assert w.gen.meter.toolTip() == tip
    recited = lines[7].strip() + "\n" + lines[8]
    sample = "#!" + "\n" + " " * 28 + "#!" * 5 + recited + "!#"
    w.samples.add_sample(10, 2.0, 0.8, sample)
    selections = w.samples.extraSelections()
    assert [s.cursor.selectedText().replace("\u2029", "\n") for s in selections] == [recited]
    text = w.samples.meter.text()
    assert f"longest {len(recited)} characters" in text
    share = 29 / len(sample)  # the newline and 28 spaces
    assert f"(another {share:.0%} verbatim but too plain to count, such as indentation)" in text


def test_an_opened_model_is_inspected_without_training(qtbot, trained, tmp_path):
    w = trained
    path = tmp_path / "m.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(path))
    w.inspect.result = None
    with qtbot.waitSignal(w.inspect.analysed, timeout=20_000):
        w.open_model(str(path))
    assert not w.ctl.training
    assert [step for step, _ in w.inspect.timelapse] == [30]  # an opened model starts afresh
    assert w.inspect.result.step == 30 and "step 30" in w.inspect.status.text()


def test_a_pasted_passage_with_unknown_characters_says_which(qtbot, trained):
    v = trained.inspect
    v.source.setCurrentIndex(1)
    assert v.own_text.isVisibleTo(v) and not v.start.isVisibleTo(v)
    v.own_text.setPlainText("the sun ☃ and the dog")
    qtbot.waitUntil(lambda: "☃" in v.status.text(), timeout=10_000)
    assert v.result is None
    v.own_text.setPlainText("the sun and the dog")
    with qtbot.waitSignal(v.analysed, timeout=10_000):
        v.analyse_button.click()
    assert v.result.analysis.text == "the sun and the dog"


def test_a_bug_in_the_analysis_is_reported_and_the_view_goes_on(qtbot, trained, monkeypatch):
    import charlstm_core.insight.inspect

    from charlstm_gui.widgets import dialogs

    v = trained.inspect
    real = charlstm_core.insight.inspect.gate_saturation
    monkeypatch.setattr(
        charlstm_core.insight.inspect,
        "gate_saturation",
        lambda a: (_ for _ in ()).throw(ZeroDivisionError("bug")),
    )
    with qtbot.waitSignal(trained.ctl.internal_error, timeout=10_000) as err:
        v.analyse_button.click()
    assert "ZeroDivisionError: bug" in err.args[0]
    assert "failed" in v.status.text() and not v.analyses.running
    qtbot.waitUntil(lambda: bool(dialogs._open_dialogs), timeout=5000)
    dialogs._open_dialogs[-1].reject()
    monkeypatch.setattr(charlstm_core.insight.inspect, "gate_saturation", real)
    with qtbot.waitSignal(v.analysed, timeout=10_000):  # the next analysis runs as usual
        v.analyse_button.click()
