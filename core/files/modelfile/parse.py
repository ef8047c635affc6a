"""Parsing and validating a model file's arrays (:func:`parse`, used on load and before every
save, so that what is saved can be loaded) and their inverse, :func:`to_arrays`.

Every key, shape, dtype and value is checked: weights and optimizer moments finite, Adam's
second moments >= 0, histories paired, RNG states ones PCG64 accepts, samples and rollback
records well formed. A failure raises schema.Invalid naming the problem; the callers add the path.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ... import __version__
from ...config import ModelConfig
from ...events import RollbackEvent
from ..vocab import N_CODEPOINTS, Vocab
from .schema import (
    APP_NAME,
    FORMAT_VERSION,
    HISTORY_KEYS,
    K_C,
    K_H,
    K_META,
    K_TRAIN_META,
    K_VERSION,
    K_VOCAB,
    MAX_ROLLBACK_RECORDS,
    MAX_SAMPLES,
    P_ADAM_M,
    P_ADAM_V,
    P_HISTORY,
    P_PARAM,
    RNG_PURPOSES,
    SERIES_NAME,
    ModelFile,
    TrainState,
    array_layout,
    bad,
    check_array,
    check_dict,
    check_float,
    check_int,
    check_version,
    json_array,
    model_config,
    parse_json,
    train_config,
)


def _expected_keys(cfg: ModelConfig, with_train: bool) -> set[str]:
    # The keys of array_layout do not depend on the batch size: any stands in for the run's.
    layout = array_layout(cfg, 1 if with_train else None)
    keys = {K_VERSION, K_META, K_VOCAB} | set(layout)
    if with_train:
        keys |= {K_TRAIN_META} | {P_HISTORY + n for n in HISTORY_KEYS}
    return keys


def parse(arrays: dict[str, np.ndarray]) -> ModelFile:
    """ModelFile from the archive's arrays; Invalid (or ModelFormatVersionError) if anything
    is missing, unknown, of the wrong shape or dtype, or inconsistent."""
    check_version(arrays)
    for key in (K_META, K_VOCAB):
        if key not in arrays:
            raise bad(f"it has no {key!r} entry")
    cfg = model_config(arrays[K_META])

    cps = arrays[K_VOCAB]
    check_array(cps, K_VOCAB, (cfg.vocab_size,), np.dtype(np.uint32))
    if cps.size and int(cps.max()) >= N_CODEPOINTS:
        raise bad("its vocabulary holds a value that is not a Unicode code point")
    if cps.size > 1 and not np.all(cps[1:] > cps[:-1]):
        raise bad("its vocabulary is not strictly increasing by code point")

    with_train = K_TRAIN_META in arrays
    expected = _expected_keys(cfg, with_train)
    history_extra = {
        k
        for k in arrays
        if with_train and k.startswith(P_HISTORY) and SERIES_NAME.fullmatch(k[len(P_HISTORY) :])
    }
    unknown = sorted(set(arrays) - expected - history_extra)
    missing = sorted(expected - set(arrays))
    if unknown:
        raise bad(f"it has unknown entries: {', '.join(map(repr, unknown))}")
    if missing:
        raise bad(f"it lacks entries: {', '.join(map(repr, missing))}")

    params = _checked(arrays, array_layout(cfg, None), P_PARAM)
    bad_names = [n for n, a in params.items() if not np.isfinite(a).all()]
    if bad_names:
        raise bad(f"it contains non-finite weights (NaN or infinity) in {', '.join(bad_names)}")
    vocab = Vocab.from_codepoints(cps)
    train = _parse_train(arrays, cfg) if with_train else None
    return ModelFile(cfg, params, vocab, train)


def _checked(
    arrays: dict[str, np.ndarray], layout: dict[str, tuple[tuple[int, ...], np.dtype]], prefix: str
) -> dict[str, np.ndarray]:
    """The entries under ``prefix`` by name, each checked against its layout shape and dtype."""
    out = {}
    for key, (shape, dtype) in layout.items():
        if key.startswith(prefix):
            check_array(arrays[key], key, shape, dtype)
            out[key[len(prefix) :]] = arrays[key]
    return out


def _parse_train(arrays: dict[str, np.ndarray], cfg: ModelConfig) -> TrainState:
    meta = parse_json(arrays[K_TRAIN_META], K_TRAIN_META)
    tcfg = train_config(meta)
    layout = array_layout(cfg, tcfg.batch_size)
    moments = [_checked(arrays, layout, P_ADAM_M), _checked(arrays, layout, P_ADAM_V)]
    for key in (K_H, K_C):
        check_array(arrays[key], key, *layout[key])
    history = {}
    for key, arr in arrays.items():
        if key.startswith(P_HISTORY):
            name = key[len(P_HISTORY) :]
            if arr.ndim != 1 or arr.dtype not in (np.dtype(np.int64), np.dtype(np.float64)):
                raise bad(f"{key!r} is not a 1-D int64 or float64 array")
            history[name] = arr
    for steps, values in (("train_step", "train_loss"), ("val_step", "val_loss")):
        if history[steps].dtype != np.int64 or history[values].dtype != np.float64:
            raise bad(f"the {steps!r} / {values!r} history must be int64 / float64")
        if history[steps].shape != history[values].shape:
            raise bad(f"the {steps!r} and {values!r} histories differ in length")
    for prefix, d in ((P_ADAM_M, moments[0]), (P_ADAM_V, moments[1])):
        nonfinite = [n for n, a in d.items() if not np.isfinite(a).all()]
        if nonfinite:
            raise bad(f"its optimizer state {prefix}{nonfinite[0]} holds NaN or infinity")
    neg = [n for n, a in moments[1].items() if (a < 0).any()]
    if neg:
        raise bad(
            f"its optimizer state {P_ADAM_V}{neg[0]} holds negative values (Adam's second "
            "moments are squares)"
        )
    for key in (K_H, K_C):
        if not np.isfinite(arrays[key]).all():
            raise bad(f"its carried state {key!r} holds NaN or infinity")
    elapsed = check_float(meta, "elapsed_s")
    if not (math.isfinite(elapsed) and elapsed >= 0):  # type: ignore[arg-type]
        raise bad("the training state's 'elapsed_s' is not a finite time >= 0")
    best = check_float(meta, "best_val_loss", optional=True)
    if best is not None and not (math.isfinite(best) and best >= 0):
        raise bad(f"the training state's best validation loss is {best}, not a finite loss")
    return TrainState(
        config=tcfg,
        step=check_int(meta, "step"),
        total_steps=check_int(meta, "total_steps"),
        elapsed_s=elapsed,  # type: ignore[arg-type]
        adam_m=moments[0],
        adam_v=moments[1],
        h=arrays[K_H],
        c=arrays[K_C],
        rng=_check_rng(check_dict(meta, "rng")),
        stream=_check_stream(check_dict(meta, "stream")),
        history=history,
        corpus=check_dict(meta, "corpus"),
        best_val_loss=best,
        samples=_check_samples(meta.get("samples", [])),
        lr_scale=_check_lr_scale(meta.get("lr_scale", 1.0)),
        rollbacks=_check_rollbacks(meta.get("rollbacks", [])),
    )


def _check_rng(rng: dict) -> dict:
    """Each purpose's state must be one a PCG64 generator accepts (what the trainer resumes)."""
    for purpose in RNG_PURPOSES:
        state = rng.get(purpose)
        try:
            if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
                raise ValueError
            np.random.PCG64().state = state
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError):
            raise bad(
                f"the training state's random-generator state for {purpose!r} is missing or invalid"
            ) from None
    return rng


def _check_stream(stream: dict) -> dict:
    """Stream positions are whole numbers >= 0 (the trainer checks them against the text)."""
    for key, value in stream.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise bad(f"the training state's stream position {key!r} is not a whole number >= 0")
    return stream


def _check_samples(samples: object) -> tuple[tuple[int, str], ...]:
    """[[step, text], ...] of the run's samples, as a tuple of pairs."""
    ok = isinstance(samples, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and isinstance(p[0], int)
        and not isinstance(p[0], bool)
        and p[0] >= 0
        and isinstance(p[1], str)
        for p in samples
    )
    if not ok:
        raise bad("the training state's samples are not a list of [step, text] pairs")
    return tuple((int(a), str(b)) for a, b in samples)  # type: ignore[index]


def _check_lr_scale(value: object) -> float:
    """The learning-rate multiplier left by rollbacks: a number in (0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and 0 < value <= 1):  # type: ignore[arg-type]
        raise bad(f"the training state's learning-rate multiplier {value!r} is not in (0, 1]")
    return float(value)  # type: ignore[arg-type]


def _check_rollbacks(records: object) -> tuple[RollbackEvent, ...]:
    """[{from_step, to_step, lr_before, lr_after, lr_scale, reason, loss}, ...] as events."""
    fields = {f.name for f in dataclasses.fields(RollbackEvent)}
    out = []
    for r in records if isinstance(records, list) else [None]:
        ok = isinstance(r, dict) and set(r) == set(fields)
        if ok:
            ints = [r["from_step"], r["to_step"]]
            nums = [r["lr_before"], r["lr_after"], r["lr_scale"]]
            loss = r["loss"]
            ok = (
                (loss is None or (isinstance(loss, float) and math.isfinite(loss)))
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints)
                and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in nums
                )
                and isinstance(r["reason"], str)
                and r["to_step"] <= r["from_step"]
            )
        if not ok:
            raise bad("the training state's rollback records are malformed")
        out.append(RollbackEvent(**r))  # type: ignore[arg-type]
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Save


def to_arrays(mf: ModelFile) -> dict[str, np.ndarray]:
    """The archive's entries for ``mf`` (the inverse of ``parse``)."""
    arrays: dict[str, np.ndarray] = {
        K_VERSION: np.array(FORMAT_VERSION, dtype=np.int64),
        K_META: json_array(
            {
                "app": APP_NAME,
                "app_version": __version__,
                "model_config": dataclasses.asdict(mf.config),
            }
        ),
        K_VOCAB: mf.vocab.codepoints(),
    }
    for name, arr in mf.params.items():
        arrays[P_PARAM + name] = np.ascontiguousarray(arr)
    t = mf.train
    if t is not None:
        meta = {
            "config": dataclasses.asdict(t.config),
            "step": int(t.step),
            "total_steps": int(t.total_steps),
            "elapsed_s": float(t.elapsed_s),
            "rng": t.rng,
            "stream": t.stream,
            "corpus": t.corpus,
            "best_val_loss": None if t.best_val_loss is None else float(t.best_val_loss),
            "samples": [[int(step), str(text)] for step, text in t.samples[-MAX_SAMPLES:]],
            "lr_scale": float(t.lr_scale),
            "rollbacks": [dataclasses.asdict(r) for r in t.rollbacks[-MAX_ROLLBACK_RECORDS:]],
        }
        arrays[K_TRAIN_META] = json_array(meta)
        for name, arr in t.adam_m.items():
            arrays[P_ADAM_M + name] = np.ascontiguousarray(arr)
        for name, arr in t.adam_v.items():
            arrays[P_ADAM_V + name] = np.ascontiguousarray(arr)
        arrays[K_H] = np.ascontiguousarray(t.h)
        arrays[K_C] = np.ascontiguousarray(t.c)
        for name, arr in t.history.items():
            arr = np.asarray(arr)
            # Steps are stored as int64 and losses as float64 whatever the caller kept them in.
            kind = np.int64 if name.endswith("_step") or arr.dtype.kind in "iub" else np.float64
            arrays[P_HISTORY + name] = np.ascontiguousarray(arr, dtype=kind).reshape(-1)
    return arrays
