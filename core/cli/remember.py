"""What the command line fills in when MODEL or TEXT is left out, and the line that says so.

MODEL defaults to the newest model in the run store: the model file of the newest run that
recorded one (``charlstm runs`` lists them, newest first). TEXT (``inspect``, ``cells``)
defaults to the validation part of the model's own text: the file its checkpoint records
(``charlstm_core.files.own_text``), split as that model was trained (its validation fraction and
split), so the passage is text the model never trained on. Either choice is said on stderr in
one line; explicit arguments always win, and a store without a model, a recorded file that is
gone or a text that changed is a clear error asking for the argument.
"""

from __future__ import annotations

import argparse
import os

from ..errors import CorpusError, ModelFileError
from ..files.modelfile import ModelFile
from ..files.text import display_path, split_ids
from .console import UsageError, note


def model_path(args: argparse.Namespace) -> str:
    """``args.model``, or the newest model in the run store (``--runs-db``), said on stderr."""
    if args.model:
        return args.model
    from ..runs import RunStore, default_db_path

    db = args.runs_db or default_db_path()
    if not os.path.exists(db):
        raise UsageError(
            f"no MODEL given, and there is no run store at {db} to take the newest model from: "
            "give MODEL (a .npz file) or train one first (charlstm train TEXT)."
        )
    with RunStore.open(db) as store:
        runs = store.list_runs()
    run = next((r for r in runs if r.model_path), None)
    if run is None:
        raise UsageError(
            f"no MODEL given, and no run in {db} recorded a model file: give MODEL (a .npz "
            "file) or train one first (charlstm train TEXT)."
        )
    path = run.model_path
    assert path is not None
    if not os.path.isfile(path):
        raise ModelFileError(
            f"no MODEL given; the newest model in the run store, {display_path(path)} (run "
            f"{run.id}, “{run.name}”), no longer exists. Give MODEL, or see the others with "
            "'charlstm runs'."
        )
    where = f"{display_path(path)} (run {run.id}, “{run.name}”)"
    note(f"no MODEL given: using the newest model in the run store, {where}")
    return path


def own_validation_text(
    model: ModelFile, path: str, encoding: str | None
) -> tuple[str, str | None, str]:
    """(the validation part of ``model``'s own text, the file it was read from (None for the
    built-in text), the text's name), said on stderr; the whole text when the model validated
    on none. UsageError when the model records no text or it cannot be found as it was."""
    from ..files.own_text import load_own_text

    t = model.train
    if t is None:
        raise UsageError(
            f"{display_path(path)} holds weights only and records no training text: give TEXT."
        )
    try:
        corpus = load_own_text(t.corpus, path, encoding)
    except CorpusError as e:
        raise UsageError(f"no TEXT given. {e} Give TEXT.") from None
    how = getattr(t.config, "val_split", "last")
    train_ids, val_ids = split_ids(corpus.ids, t.config.val_fraction, how)
    where = display_path(corpus.path) if corpus.path else corpus.name
    if val_ids.size < 2:
        note(f"no TEXT given: reading {where}, the model's own text (it kept no validation part)")
        return corpus.vocab.decode(train_ids), corpus.path, corpus.name
    part = "the last" if how == "last" else "ten blocks of"
    note(
        f"no TEXT given: reading the validation part of {where}, the model's own text "
        f"({part} {t.config.val_fraction:.0%}, {val_ids.size:,} characters it never trained on)"
    )
    return corpus.vocab.decode(val_ids), corpus.path, corpus.name
