"""Looking inside a model: passage analysis, detectors, unit ranking, select-and-match, gate
saturation, compression yardsticks and the HTML page."""

from __future__ import annotations

import bz2
import gzip
import html
import lzma
import math
import re

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine import parallel
from charlstm_core.engine.model import Prepared, init_params, zero_state
from charlstm_core.errors import ConfigError, VocabularyError
from charlstm_core.files.modelfile import ModelFile
from charlstm_core.files.text import Vocab
from charlstm_core.files.writer import Kind, write_atomic
from charlstm_core.insight import inspect as ins
from charlstm_core.insight.html import render
from helpers import assert_ulps, drift_ulps, ulp

# ---------------------------------------------------------------------------------- a model


@pytest.fixture
def model() -> ModelFile:
    vocab = Vocab.from_text("abcdefgh \n.\"'<>&")
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=12, num_layers=2, dropout=0.0)
    params = init_params(cfg, np.random.default_rng(3))
    for p in params.values():
        p *= 4.0
    return ModelFile(config=cfg, params=params, vocab=vocab)


QUOTE_TEXT = 'ab "cd ef" gh. "a" bb\nc "dd\nee" f "g" h.'


def quote_model() -> ModelFile:
    """One layer of 8 units; unit 0's cell is set by hand to +1 inside double quotes, -1 outside.

    On a quote: forget 0, input 1, g = tanh(A - 2A/tanh(1) · h0), i.e. +1 when h0 = 0 or
    -tanh(1) (outside) and -1 when h0 = +tanh(1) (inside). On any other character: forget 1,
    input 0, so c holds. Output gate always 1, so h0 = tanh(c0). The other units are small noise.
    """
    vocab = Vocab.from_text(QUOTE_TEXT)
    H = 8
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=H, num_layers=1, dropout=0.0)
    params = init_params(cfg, np.random.default_rng(0))
    for p in params.values():
        p *= 0.1
    wih, whh = params["lstm.weight_ih_l0"], params["lstm.weight_hh_l0"]
    bih, bhh = params["lstm.bias_ih_l0"], params["lstm.bias_hh_l0"]
    i, f, g, o = 0, H, 2 * H, 3 * H  # PyTorch order i, f, g, o; unit 0's row in each gate
    q = vocab.chars.index('"')
    B, A = 30.0, 10.0
    for row in (i, f, g, o):
        wih[row], whh[row], bih[row], bhh[row] = 0.0, 0.0, 0.0, 0.0
    wih[i], wih[i, q] = -B, B
    wih[f], wih[f, q] = B, -B
    wih[g, q] = A
    whh[g, 0] = -2 * A / math.tanh(1.0)
    bih[o] = B
    return ModelFile(config=cfg, params=params, vocab=vocab)


# ---------------------------------------------------------------------------------- analysis


def step_by_step(model: ModelFile, text: str):
    """Reference: one ``Prepared.step`` per character, softmax per step."""
    prep = Prepared(model.params, model.config)
    state = zero_state(model.config, 1)
    probs, hs, cs = [], [], []
    for i in model.vocab.encode(text).astype(np.int64):
        logits, state = prep.step(np.array([i]), state)
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        probs.append(p / p.sum())
        hs.append(state[0][:, 0].copy())
        cs.append(state[1][:, 0].copy())
    return np.array(probs[:-1]), np.stack(hs, axis=1), np.stack(cs, axis=1)


def test_analysis_agrees_with_step_by_step_reading(model):
    text = 'abc "def" gh.\n  a\'b <c> & d' * 3
    a = ins.analyse(model, text, top_k=3)
    probs, h, c = step_by_step(model, text)
    ids = model.vocab.encode(text).astype(np.int64)
    N, L, H = len(text), model.config.num_layers, model.config.hidden_size
    assert a.bits.shape == (N - 1,) and a.top_ids.shape == (N - 1, 3) and a.ids.shape == (N,)
    assert a.h.shape == a.c.shape == (L, N, H) and a.gates.shape == (L, N, 3, H)
    p_actual = probs[np.arange(N - 1), ids[1:]]
    # the window's products (a (T, H) @ (H, 4H) input product, the recurrence on 1-D rows) and
    # the steps' (one product on [x, h]) sum the same 2H terms in other orders; a probability's
    # relative error is its logit's error, a dot product with h: all within the drift
    k = drift_ulps(N, 2 * H, L)
    np.testing.assert_allclose(a.p_actual, p_actual, rtol=ulp(np.float32, k))
    assert_ulps(a.h, h, k)
    assert_ulps(a.c, c, k)
    np.testing.assert_array_equal(a.top_ids, np.argsort(-probs, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(
        a.top_probs, -np.sort(-probs, axis=1)[:, :3], rtol=ulp(np.float32, k)
    )
    # a character's bits are -log2 p: off by p's relative error / ln 2, and so is their mean
    expected_bits = float(np.mean(-np.log2(p_actual)))
    assert a.mean_bits == pytest.approx(expected_bits, rel=0, abs=ulp(np.float32, k) / math.log(2))
    assert [ch for ch, _ in a.top_chars(4)] == [model.vocab.chars[j] for j in a.top_ids[4]]
    assert np.all((a.gates > 0) & (a.gates < 1))
    # the output gate and the cell give h back: h = o * tanh(c), the pass's own two float32
    # roundings (tanh, then the product); np.tanh's vector and scalar loops may differ by an ULP
    np.testing.assert_allclose(a.h, a.gates[:, :, 2] * np.tanh(a.c), rtol=ulp(np.float32, 4))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blockwise_recurrence_agrees_with_step_by_step_reading(monkeypatch, dtype):
    """W_hh read in blocks of rows, alternately forwards and backwards (``row_blocks``), with the
    passage split into windows: the same reading as one ``Prepared.step`` per character."""
    from charlstm_core.engine import trace as trace_mod

    vocab = Vocab.from_text("abcdefgh \n.\"'<>&")
    cfg = ModelConfig(vocab.size, hidden_size=24, num_layers=2, dropout=0.0, dtype=dtype)
    params = init_params(cfg, np.random.default_rng(5))
    for p in params.values():
        p *= 3.0
    model = ModelFile(config=cfg, params=params, vocab=vocab)
    H = cfg.hidden_size
    item = np.dtype(dtype).itemsize
    monkeypatch.setattr(trace_mod, "BLOCK_BYTES", 7 * H * item)  # 7 rows: 14 blocks, one short
    w = np.ones((4 * H, H), dtype)
    assert [wt.shape[1] for _, wt in trace_mod.row_blocks(w)] == [7] * 13 + [5]
    assert [wt.shape[1] for _, wt in trace_mod.row_blocks(w, threads=2)] == [14] * 6 + [12]
    assert len(trace_mod.row_blocks(w, threads=7)) == 1  # each thread's share fits
    monkeypatch.setattr(ins, "_WINDOW", 33)  # odd: a window starts on an odd step too
    text = 'abc "def" gh.\n  a\'b <c> & d' * 4
    with parallel.single_threaded_blas():  # as beside a training: one thread, 14 blocks
        a = ins.analyse(model, text, top_k=4)
    probs, h, c = step_by_step(model, text)
    ids = model.vocab.encode(text).astype(np.int64)
    # blocks of W_hh's rows, windows and one product per step sum the same 2H terms in other
    # orders (and each CPU's BLAS in its own): within the drift, in ULP of h's and c's largest
    # values; a probability's relative error is its logit's, a dot product with h
    k = drift_ulps(len(text), 2 * H, cfg.num_layers)
    assert a.h.dtype == np.dtype(dtype)
    p_actual = probs[np.arange(len(text) - 1), ids[1:]]
    np.testing.assert_allclose(a.p_actual, p_actual, rtol=ulp(dtype, k))
    assert_ulps(a.h, h, k)
    assert_ulps(a.c, c, k)
    np.testing.assert_array_equal(a.top_ids, np.argsort(-probs, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(a.top_probs, -np.sort(-probs, axis=1)[:, :4], rtol=ulp(dtype, k))


def _three_layers(dtype: str = "float64") -> ModelFile:
    vocab = Vocab.from_text("abcdefgh \n.\"'<>&")
    cfg = ModelConfig(vocab.size, hidden_size=16, num_layers=3, dropout=0.0, dtype=dtype)
    params = init_params(cfg, np.random.default_rng(9))
    for p in params.values():
        p *= 3.0
    return ModelFile(config=cfg, params=params, vocab=vocab)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_side_by_side_read_as_one_after_the_other(monkeypatch, dtype):
    """Three layers on three threads, handing on chunks of 5 characters in windows of 47: the same
    reading as one ``Prepared.step`` per character, and as the layers one after the other."""
    from charlstm_core.engine import trace as trace_mod

    model = _three_layers(dtype)
    monkeypatch.setattr(trace_mod, "PIPE_CHUNK", 5)
    monkeypatch.setattr(ins, "_WINDOW", 47)
    text = 'abc "def" gh.\n  a\'b <c> & d' * 5
    started: list[str] = []
    real_thread = trace_mod.threading.Thread

    def thread(*args, **kwargs):  # counts the layer threads started
        started.append(kwargs.get("name", ""))
        return real_thread(*args, **kwargs)

    monkeypatch.setattr(trace_mod.threading, "Thread", thread)
    monkeypatch.setattr(trace_mod, "usable_cores", lambda: 2)
    with parallel.single_threaded_blas():  # as beside a training
        side = ins.analyse(model, text)
    assert started and set(started) == {"trace-layer-1", "trace-layer-2"}
    monkeypatch.setattr(trace_mod, "usable_cores", lambda: 1)
    started.clear()
    with parallel.single_threaded_blas():
        serial = ins.analyse(model, text)
    assert started == []
    probs, h, c = step_by_step(model, text)
    cfg = model.config
    k = drift_ulps(len(text), 2 * cfg.hidden_size, cfg.num_layers)  # as in the blockwise test
    for a in (side, serial):
        assert_ulps(a.h, h, k)
        assert_ulps(a.c, c, k)
    # the same products on the same rows, only on other threads: bit for bit the same reading
    np.testing.assert_array_equal(side.gates, serial.gates)
    np.testing.assert_array_equal(side.top_ids, serial.top_ids)


def test_a_failing_layer_stops_the_pipeline_and_raises(monkeypatch):
    """An error in one layer's thread reaches the caller; the layer waiting for it does not hang."""
    from charlstm_core.engine import trace as trace_mod

    model = _three_layers()
    monkeypatch.setattr(trace_mod, "PIPE_CHUNK", 5)
    monkeypatch.setattr(trace_mod, "usable_cores", lambda: 2)
    real = trace_mod._LayerRun._layer

    def broken(self, k, threads):
        if k == 1:
            raise MemoryError("layer 1 ran out")
        return real(self, k, threads)

    monkeypatch.setattr(trace_mod._LayerRun, "_layer", broken)
    with parallel.single_threaded_blas(), pytest.raises(MemoryError, match="layer 1 ran out"):
        ins.analyse(model, "abcdefgh " * 20)


def test_windows_carry_the_state(model, monkeypatch):
    text = "abcdefgh \n." * 7
    whole = ins.analyse(model, text)
    monkeypatch.setattr(ins, "_WINDOW", 7)
    pieces = ins.analyse(model, text)
    # the state crosses windows as it is; only layer 1's input product and the decoder see 7
    # rows at a time instead of 64 (another kernel, H terms in another order), and the state
    # carries those differences on: within the drift; bits are -log2 p, off by p's relative
    # error / ln 2 (absolute: a character's bits may be near 0)
    k = drift_ulps(len(text), model.config.hidden_size, model.config.num_layers)
    np.testing.assert_allclose(
        pieces.bits, whole.bits, rtol=0, atol=ulp(np.float32, k) / math.log(2)
    )
    assert_ulps(pieces.c, whole.c, k)
    np.testing.assert_array_equal(pieces.top_ids, whole.top_ids)
    every = ins.analyse(model, text, top_k=100)  # k above V: all characters, sorted
    V = model.vocab.size
    assert every.top_ids.shape == (len(text) - 1, V)
    # V float64 probabilities, each rounded once by the division by their sum, summed again
    np.testing.assert_allclose(every.top_probs.sum(axis=1), 1.0, rtol=ulp(np.float64, V))
    assert np.all(np.diff(every.top_probs, axis=1) <= 0)
    lean = ins.analyse(model, text, activations=False)
    assert lean.h is None and lean.gates is None
    # the same windows (still 7) and passes as ``pieces``: the same bits; only less is kept
    np.testing.assert_array_equal(lean.bits, pieces.bits)
    with pytest.raises(ConfigError, match="without activations"):
        lean.values("c")


def test_unknown_characters_are_named_and_can_be_dropped(model):
    with pytest.raises(VocabularyError) as err:
        ins.analyse(model, "abc XYZ")
    assert set(err.value.missing) == {"X", "Y", "Z"} and "'X'" in str(err.value)
    clean, dropped = ins.known_text(model.vocab, "abXc Yd")
    assert clean == "abc d" and dropped == ("X", "Y")
    assert ins.known_text(model.vocab, "abc") == ("abc", ())
    with pytest.raises(ConfigError, match="at least 2"):
        ins.analyse(model, "a")


def test_too_long_a_passage_for_activations_is_refused(model, monkeypatch):
    monkeypatch.setattr(ins, "ACTIVATION_BUDGET", 10 * 2 * 12 * 5 * 4)
    assert ins.max_passage(model) == 10
    with pytest.raises(ConfigError, match="at most 10"):
        ins.analyse(model, "abcdefghabc")
    assert ins.analyse(model, "abcdefghabc", activations=False).bits.size == 10


def test_surprising_spans_pick_the_largest_windows(model):
    a = ins.analyse(model, "abcdefgh" * 4)
    spans = ins.surprising_spans(a, count=3, width=4)
    per = np.nan_to_num(ins.char_bits(a))
    assert len(spans) == 3
    for s, e, total in spans:
        assert e - s == 4 and total == pytest.approx(per[s:e].sum())
    best = max(per[s : s + 4].sum() for s in range(len(per) - 3))
    assert spans[0][2] == pytest.approx(best)
    starts = sorted(s for s, _, _ in spans)
    assert all(b - a >= 4 for a, b in zip(starts, starts[1:], strict=False))
    assert ins.surprising_spans(a, count=0) == []  # inspect --spans 0 listed every window


# ---------------------------------------------------------------------------------- detectors


def test_quote_detectors():
    d = ins.detectors('a "b c" d')
    assert d["double quotes"].tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    d = ins.detectors("don't 'x' y")
    assert d["single quotes"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert d["in word"].tolist() == [1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1]
    assert ins.detectors("'a\nb")["single quotes"].tolist() == [1, 1, 0, 0]
    assert ins.detectors("“a” b")["double quotes"].tolist() == [1, 1, 0, 0, 0]


def test_structure_detectors():
    assert ins.detectors("f(a[b]))x")["bracket depth"].tolist() == [0, 1, 1, 2, 2, 1, 0, 0, 0]
    d = ins.detectors("ab\ncd")
    assert d["line position"].tolist() == [1, 2, 0, 1, 2]
    assert d["line start"].tolist() == [1, 0, 0, 1, 0]
    assert ins.detectors("a\n\nb")["line start"].tolist() == [1, 0, 0, 1]
    assert ins.detectors("  a b\n\tc")["indentation"].tolist() == [1, 2, 2, 2, 2, 0, 4, 4]


def test_character_class_detectors():
    d = ins.detectors("Ab1")
    assert d["uppercase"].tolist() == [1, 0, 0] and d["digit"].tolist() == [0, 0, 1]
    d = ins.detectors("Hi. Yo 3.5!")
    assert d["after sentence end"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert set(ins.detectors("x")) == set(ins.DETECTORS)


# ---------------------------------------------------------------------------------- units


def test_the_quote_unit_tops_the_ranking_and_select_and_match_finds_it():
    m = quote_model()
    a = ins.analyse(m, QUOTE_TEXT)
    tc = a.values("c")[0, :, 0]
    inside = ins.detectors(QUOTE_TEXT)["double quotes"].astype(bool)
    assert np.all(tc[inside] > 0.7) and np.all(tc[~inside] < 0.05)  # the hand-set unit works
    ranking = ins.rank_units(a, ins.detectors(QUOTE_TEXT), "c", top=3)
    best = ranking["double quotes"][0]
    assert (best.layer, best.unit) == (0, 0) and best.r > 0.95
    assert all(abs(s.r) <= abs(best.r) for s in ranking["double quotes"])
    assert ranking["digit"] == []  # constant detector: no units, no warning
    # select the first quotation, from its opening quote up to its closing one
    start = QUOTE_TEXT.index('"')
    end = QUOTE_TEXT.index('"', start + 1)
    match = ins.match_selection(a, start, end, threshold=0.5, kind="c")
    assert [(u.layer, u.unit) for u in match.units] == [(0, 0)]
    assert match.units[0].inside > 0.7 > match.units[0].outside
    others = [(s, e) for s, e in ins.runs(inside) if not (s == start)]
    assert list(match.spans) == others and len(others) == 3
    assert ins.match_selection(a, 0, 2, threshold=0.5).units == ()
    with pytest.raises(ConfigError):
        ins.match_selection(a, 5, 5)


def test_correlations_handle_constant_signals():
    values = np.zeros((1, 6, 2), np.float32)
    values[0, :, 1] = [0, 1, 0, 1, 0, 1]
    r = ins.correlations(values, np.array([[0, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1.0]]))
    assert r.shape == (2, 1, 2)
    assert r[0, 0].tolist() == pytest.approx([0.0, 1.0]) and r[1].tolist() == [[0.0, 0.0]]


def test_gate_saturation_counts_the_quote_units_forget_gate():
    m = quote_model()
    a = ins.analyse(m, QUOTE_TEXT)
    sat = ins.gate_saturation(a)
    assert sat.shape == (1, 3, 8, 2)
    quotes = QUOTE_TEXT.count('"') / len(QUOTE_TEXT)
    forget = sat[0, ins.GATES.index("forget"), 0]
    assert forget.tolist() == pytest.approx([quotes, 1 - quotes])
    assert sat[0, ins.GATES.index("output"), 0].tolist() == [0.0, 1.0]
    assert np.all(sat.sum(axis=-1) <= 1.0)


def test_runs():
    assert ins.runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    assert ins.runs(np.zeros(3, bool)) == []


# ---------------------------------------------------------------------------------- yardsticks


def test_compression_lines_are_the_compressors_sizes_in_nats_per_character():
    text = "Ünïcödé text, “quoted”, repeated. " * 40 + "Ende.\n"
    raw = text.encode("utf-8")
    n = len(text)
    expected = [
        len(gzip.compress(raw, compresslevel=9)) * 8 / n * math.log(2),
        len(bz2.compress(raw, compresslevel=9)) * 8 / n * math.log(2),
        len(lzma.compress(raw, preset=9)) * 8 / n * math.log(2),
    ]
    assert ins.compressed_nats(text) == pytest.approx(expected)
    y = ins.yardsticks(text, "abab" * 10)
    assert [y.gzip, y.bz2, y.xz] == pytest.approx(expected)
    assert not y.val_prefix and not y.train_prefix and y.val_chars == n


def test_entropies_by_hand():
    uni, bi = ins.entropies("abababab")
    assert uni == pytest.approx(math.log(2)) and bi == pytest.approx(0.0, abs=1e-12)
    uni, bi = ins.entropies("aabb")  # pairs aa, ab, bb: H(pair) = ln 3, H(prev a, a, b) = ...
    h_prev = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert uni == pytest.approx(math.log(2)) and bi == pytest.approx(math.log(3) - h_prev)


def test_yardsticks_measure_a_prefix_of_long_texts_and_say_so():
    y = ins.yardsticks("x" * 100, "ab" * 100, max_chars=10, max_train_chars=20)
    assert y.val_prefix and y.val_chars == 10 and y.train_prefix and y.train_chars == 20
    labels = y.lines()
    assert [label for label, _, _ in labels] == ["gzip -9", "bz2 -9", "xz -9", "unigram", "bigram"]
    assert "first 10 characters" in labels[0][2] and "first 20 characters" in labels[3][2]
    with pytest.raises(ConfigError):
        ins.yardsticks("", "ab")


# ---------------------------------------------------------------------------------- HTML


def test_html_escapes_hostile_text(model, tmp_path):
    hostile = '<script>alert("x")</script> & <b>a</b>\n' * 2
    vocab = Vocab.from_text(hostile)
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=8, num_layers=1, dropout=0.0)
    m = ModelFile(cfg, init_params(cfg, np.random.default_rng(1)), vocab)
    a = ins.analyse(m, hostile)
    page = render(a, "<script>title</script>")
    assert "<script" not in page.lower() and "<b>" not in page
    assert "&lt;script&gt;" in page
    # every character is its own span, and unescaping the spans gives the text back
    body = page[page.index('<div class="text">') :]
    chars = re.findall(r"<span [^>]*>(.*?)</span>", body, re.S)
    assert html.unescape("".join(chars)) == hostile
    assert "⏎ (newline)" in page and "bits" in page  # tooltips name whitespace visibly
    unit_page = render(a, "t", unit=(0, 3), kind="h")
    assert "Layer 1 unit 3" in unit_page and "<script" not in unit_page.lower()  # from 1
    out = tmp_path / "page.html"
    write_atomic(str(out), Kind.PAGE, page)
    assert out.read_text(encoding="utf-8") == page
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary left behind
