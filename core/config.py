"""Frozen configuration of the model, of a training run and of generating text: each setting
defined once.

All three are plain frozen dataclasses: ``dataclasses.asdict`` turns them into JSON-able dicts
(stored in model files and the GUI's settings) and ``from_dict`` turns such a dict back, ignoring
unknown keys.

Every field carries its whole definition: the default on the field, and in its metadata a
``Setting`` with the kind (int, float, a choice of strings or free text), the range or choices,
the unit, a short label and the help text. ``validate()`` checks the fields against these; the
command line's options (``charlstm_core.cli.options``: ``train``'s and ``sample``'s), the app's
settings form and Generate tab, and the settings tables of the docs
(``packaging/settings_table.py``) are generated from them, and ``tests/test_settings_agree.py``
checks that they agree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

DTYPES = ("float32", "float64")
SCHEDULES = ("constant", "cosine")
ON_DIVERGENCE = ("heal", "stop")
VAL_SPLITS = (
    "last",
    "blocks",
)  # where validation comes from: see charlstm_core.files.text.split_ids
DURATIONS = ("steps", "epochs", "minutes")  # how long to train: exactly one is set


@dataclass(frozen=True)
class Setting:
    """What a config field is, for the checks and the front ends (its default is on the field).

    ``kind`` is int, float or str (a choice of ``choices``, or any text when there are none);
    numbers lie in ``lo``..``hi``. ``noun`` names the setting in a sentence ("The hidden size must
    be ..."). ``flag`` is the command-line option ("" = ``--`` and the field name with dashes;
    None = no option). ``none`` says what None means for a field that may be None ("random": a
    fresh seed each time); "" = None is not a value.
    """

    kind: type
    label: str
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    noun: str = ""
    flag: str | None = ""
    none: str = ""

    @property
    def summary(self) -> str:
        """The help's first sentence, without its full stop (the command line's short help)."""
        head, _, _ = self.help.partition(". ")
        return head.rstrip(".")

    @property
    def name(self) -> str:
        return self.noun or self.label.lower()

    def check(self, value: Any) -> None:
        """Raise ``ConfigError`` saying what is wrong unless ``value`` is valid."""
        if value is None and self.none:
            return
        if self.kind is str and not self.choices:
            if not isinstance(value, str):
                raise ConfigError(f"The {self.name} must be text, not {value!r}.")
        elif self.kind is str:
            if value not in self.choices:
                raise ConfigError(
                    f"The {self.name} must be one of {', '.join(self.choices)}, not {value!r}."
                )
        elif self.kind is int:
            lo, hi = int(self.lo), int(self.hi)  # type: ignore[arg-type]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(
                    f"The {self.name} must be a whole number from {lo:,} to {hi:,}, not {value!r}."
                )
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not self.lo <= value <= self.hi:  # type: ignore[operator]
                raise ConfigError(
                    f"The {self.name} must be a number from {self.lo:g} to {self.hi:g}, "
                    f"not {value!r}."
                )


def _setting(default: Any, kind: type, label: str, help: str, **more: Any) -> Any:
    """A dataclass field with ``default`` and its ``Setting`` in the metadata."""
    return dataclasses.field(
        default=default, metadata={"setting": Setting(kind, label, help, **more)}
    )


def _shared(default: Any, base: Setting, help: str, **changes: Any) -> Any:
    """A dataclass field with ``default`` and ``base``, a ``Setting`` that fields of two configs
    share (its kind, range and unit), given its own ``help`` and ``changes`` (a label, a flag)."""
    setting = dataclasses.replace(base, help=help, **changes)
    return dataclasses.field(default=default, metadata={"setting": setting})


def setting(cls: type, name: str) -> Setting:
    """The ``Setting`` of field ``name`` of ``ModelConfig``, ``TrainConfig`` or
    ``GenerationConfig``."""
    return next(f.metadata["setting"] for f in dataclasses.fields(cls) if f.name == name)


def settings(cls: type) -> dict[str, tuple[Setting, Any]]:
    """Each field of ``cls`` by name: its ``Setting`` and its default (None when it has none)."""
    return {
        f.name: (f.metadata["setting"], None if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
    }


# What the generated text and the training samples share (each defined once, here): what the
# temperature does and its default, and the ranges of the temperature, the length and the seed.
# The ranges are also what model files already hold: a narrower one would refuse a file saved
# before. The engine honours any temperature (the text flattens towards noise); 10 ends the range.
TEMPERATURE_DEFAULT = 0.8
TEMPERATURE_EFFECT = (
    "0 always picks the likeliest character (repetitive), 1 draws from the model as it is, above "
    f"1 grows wild; 0.5–0.8 reads best, so {TEMPERATURE_DEFAULT:g} is the default. Any value up "
    "to 10 works, though above 2 any model writes noise."
)
TEMPERATURE = Setting(float, "Temperature", "", lo=0.0, hi=10.0)
LENGTH = Setting(int, "Length", "", lo=1, hi=1_000_000, unit="characters")
SEED = Setting(int, "Seed", "", lo=0, hi=2**63 - 1)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = dataclasses.field(
        metadata={
            "setting": Setting(
                int, "Vocabulary size",
                "Distinct characters of the text (V), sorted by code point; set from the text.",
                lo=1, hi=2**31 - 1, unit="characters", flag=None,
            )
        }
    )  # fmt: skip
    hidden_size: int = _setting(
        512, int, "Hidden size",
        "Memory cells per LSTM layer (H). Bigger learns more detail but is slower (time grows "
        "~H²) and overfits small texts. 128 for a quick look, 256–512 for a few MB of text.",
        lo=8, hi=2048, unit="units", flag="--hidden",
    )  # fmt: skip
    num_layers: int = _setting(
        1, int, "Layers",
        "Stacked LSTM layers (L). Two layers learn longer structure than one at the same speed "
        "cost as doubling H; more than 3 rarely helps.",
        lo=1, hi=4, unit="layers", noun="number of layers", flag="--layers",
    )  # fmt: skip
    dropout: float = _setting(
        0.2, float, "Dropout",
        "Fraction of activations zeroed while training, between layers and before the output. "
        "Raise it (0.2–0.5) when validation loss rises while training loss keeps falling "
        "(overfitting); 0 for tiny or short runs.",
        lo=0.0, hi=0.9,
    )  # fmt: skip
    dtype: str = _setting(
        "float32", str, "Weights type",
        "Floating-point type of the weights. float32 is fast; float64 is for gradient checks.",
        choices=DTYPES, noun="dtype",
    )  # fmt: skip

    def validate(self) -> ModelConfig:
        _validate(self)
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = _setting(
        50, int, "Sequence length",
        "Characters the network is back-propagated through at once (T). Longer captures longer "
        "patterns but costs more memory per step; 50–200 is typical.",
        lo=1, hi=10_000, unit="characters",
    )  # fmt: skip
    batch_size: int = _setting(
        32, int, "Batch size",
        "Parallel streams through the text (B). Bigger batches give smoother gradients and use "
        "the CPU better per character, but each step takes longer. Lower it if memory is short.",
        lo=1, hi=4096, unit="streams",
    )  # fmt: skip
    # the default peak rate was chosen with T=50: README, Benchmarks, Quality
    lr: float = _setting(
        8e-3, float, "Learning rate",
        "Adam's peak step size. The default was chosen with sequence length 50; lower it (÷2–5) "
        "if the loss jumps up or training diverges, raise it slightly if the loss falls very "
        "slowly.",
        lo=1e-7, hi=1.0, flag="--lr",
    )  # fmt: skip
    lr_schedule: str = _setting(
        "cosine", str, "LR schedule",
        "How the learning rate changes over the run. cosine: warm up, then decay it smoothly to "
        "a fraction of the peak by the end (best results); constant: keep it fixed (useful for "
        "open-ended runs).",
        choices=SCHEDULES, noun="learning-rate schedule", flag="--schedule",
    )  # fmt: skip
    warmup_steps: int = _setting(
        100, int, "Warm-up steps",
        "Steps over which the learning rate ramps up from zero before the cosine decay (cosine "
        "schedule only). Helps big models start stably.",
        lo=0, hi=10**9, unit="steps", flag="--warmup",
    )  # fmt: skip
    min_lr_ratio: float = _setting(
        0.1, float, "Minimum LR ratio",
        "Final learning rate as a fraction of the peak (cosine schedule only).",
        lo=0.0, hi=1.0, noun="minimum learning-rate ratio", flag=None,
    )  # fmt: skip
    clip: float = _setting(
        5.0, float, "Gradient clip",
        "Largest allowed gradient norm; bigger gradients are scaled down. Keeps LSTMs from "
        "exploding. 5 is safe; 0 turns it off.",
        lo=0.0, hi=1e6,
    )  # fmt: skip
    val_fraction: float = _setting(
        0.1, float, "Validation fraction",
        "The part of the text kept aside to measure how well the model generalises (validation "
        "loss). 0.05–0.1 is usual; 0 disables validation.",
        lo=0.0, hi=0.5,
    )  # fmt: skip
    val_split: str = _setting(
        "last", str, "Validate on",
        "Where the validation characters come from: the last part of the text, or ten evenly "
        "spaced blocks. The last part is the usual choice; blocks (one at the end of each tenth "
        "of the text) suit a text whose end differs from the rest — say, poetry after prose — "
        "so validation measures what the model is trained on.",
        choices=VAL_SPLITS, noun="validation split",
    )  # fmt: skip
    eval_every: int = _setting(
        200, int, "Validate every",
        "Steps between validation-loss measurements; 0 validates only at the end. Lower shows "
        "the curve in more detail but costs time on big texts.",
        lo=0, hi=10**9, unit="steps", noun="evaluation interval",
    )  # fmt: skip
    eval_max_chars: int = _setting(
        1_000_000, int, "Validation size limit",
        "Validation uses at most this many characters of the held-out text (the first ones).",
        lo=1, hi=10**12, unit="characters", flag=None,
    )  # fmt: skip
    sample_every: int = _setting(
        500, int, "Sample every",
        "Steps between the text samples written during training; 0 writes none.",
        lo=0, hi=10**9, unit="steps", noun="sample interval",
    )  # fmt: skip
    # the range and the temperature's meaning are the generated text's (GenerationConfig)
    sample_length: int = _shared(
        300, LENGTH, "Characters in each training sample.", label="Sample length",
    )  # fmt: skip
    sample_temperature: float = _shared(
        TEMPERATURE_DEFAULT, TEMPERATURE, f"Randomness of training samples: {TEMPERATURE_EFFECT}",
        label="Sample temperature", flag="--temperature",
    )  # fmt: skip
    checkpoint_every: int = _setting(
        1000, int, "Autosave every",
        "Steps between automatic checkpoints of the model (one is also written when training "
        "stops); 0: only when training stops.",
        lo=0, hi=10**9, unit="steps", noun="checkpoint interval",
    )  # fmt: skip
    seed: int = _shared(
        1234, SEED,
        "Random seed of the initial weights, dropout, stream offsets and training samples: "
        "the same text, settings and seed give exactly the same model. Change it to try another "
        "random start.",
    )  # fmt: skip
    on_divergence: str = _setting(
        "heal", str, "If training blows up",
        "What to do when training blows up (the loss far above its recent level and above a "
        "uniform guess, or infinite). Heal rolls back to the last good weights, halves the "
        "learning rate and continues; after 3 blow-ups close together it stops. Stop ends the "
        "run at once with the last good weights.",
        choices=ON_DIVERGENCE, noun="on-divergence action",
    )  # fmt: skip
    # how long to train: exactly one of steps, epochs, minutes is set
    steps: int | None = _setting(
        None, int, "Steps",
        "Optimizer steps in the model's life: a total, also when continuing it.",
        lo=1, hi=10**12, unit="steps", noun="number of steps", flag=None,
    )  # fmt: skip
    epochs: float | None = _setting(
        None, float, "Epochs",
        "Passes over the training text in the model's life: a total, also when continuing it.",
        lo=1e-6, hi=1e6, unit="epochs", noun="number of epochs", flag=None,
    )  # fmt: skip
    minutes: float | None = _setting(
        None, float, "Minutes", "Minutes of wall-clock time in this session.",
        lo=1e-3, hi=1e7, unit="minutes", noun="number of minutes", flag=None,
    )  # fmt: skip

    def validate(self) -> TrainConfig:
        given = [n for n in DURATIONS if getattr(self, n) is not None]
        _validate(self, skip=DURATIONS)
        if len(given) != 1:
            raise ConfigError(
                "Say how long to train with exactly one of steps, epochs or minutes "
                f"(got {', '.join(given) if given else 'none'})."
            )
        setting(TrainConfig, given[0]).check(getattr(self, given[0]))
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


@dataclass(frozen=True)
class GenerationConfig:
    """One run of generating text (``charlstm_core.sample.generate``) and the memorisation
    meter's shortest copy (``charlstm_core.insight.copies``): ``charlstm sample`` and the app's
    Generate tab."""

    prime: str = _setting(
        "", str, "Prime",
        "Text the model reads first and then continues; every character must occur in the "
        "training text. Empty: the model starts as if after a newline.",
        noun="prime text",
    )  # fmt: skip
    # a dozen lines show whether a line, a sentence and a paragraph hold together
    length: int = _shared(
        1000, LENGTH,
        "Characters to write after the prime. 1,000, about a dozen lines, is enough to "
        "see whether the model holds a line, a sentence and a paragraph together.",
    )  # fmt: skip
    temperature: float = _shared(
        TEMPERATURE_DEFAULT, TEMPERATURE,
        f"Randomness of the text: {TEMPERATURE_EFFECT}",
    )  # fmt: skip
    # a k at least the vocabulary's size keeps every character: the largest vocabulary ends it
    top_k: int = _setting(
        0, int, "Top-k",
        "Draw only among the k likeliest characters; 0 (off) draws among all. 5–20 removes rare "
        "typos without making the text repetitive.",
        lo=0, hi=setting(ModelConfig, "vocab_size").hi, unit="characters",
    )  # fmt: skip
    # from 0.01: a smaller nucleus is the likeliest character alone in all but flat guesses (and
    # 0 would be an empty one)
    top_p: float = _setting(
        1.0, float, "Top-p",
        "Draw only among the likeliest characters whose probabilities add up to p (nucleus "
        "sampling); 1 (off) draws among all. 0.9–0.95 cuts off the unlikely tail that turns into "
        "typos.",
        lo=0.01, hi=1.0,
    )  # fmt: skip
    seed: int | None = _shared(
        None, SEED,
        "Random seed of the draws: the same model, settings and seed write the same text. "
        "Without one (the default), a fresh seed each time.",
        none="random",
    )  # fmt: skip
    # about four words: seldom matched by chance, so a model that writes it has read it
    copies_min: int = _setting(
        20, int, "Shortest copy",
        "The memorisation meter counts a stretch of generated text as copied when at least this "
        "many characters of it occur word for word in the training text. 20, about four words, "
        "is seldom matched by chance, so a model that writes it has most likely read it; near "
        "4, ordinary words count as copies.",
        lo=4, hi=1000, unit="characters", noun="shortest copy",
    )  # fmt: skip

    def validate(self) -> GenerationConfig:
        _validate(self)
        return self

    def replace(self, **changes: Any) -> GenerationConfig:
        return dataclasses.replace(self, **changes)

    def sampling(self) -> dict[str, Any]:
        """The keyword arguments of ``charlstm_core.sample.generate`` (all but the shortest
        copy, which is the meter's)."""
        d = dataclasses.asdict(self)
        del d["copies_min"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationConfig:
        return _from_dict(cls, d)


def _validate(config: Any, skip: tuple[str, ...] = ()) -> None:
    """Check every field of ``config`` (but ``skip``) against its ``Setting``, in field order."""
    for f in dataclasses.fields(config):
        if f.name not in skip:
            f.metadata["setting"].check(getattr(config, f.name))


def _from_dict(cls, d: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
