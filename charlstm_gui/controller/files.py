"""Texts and model files for the controller: opening, saving (who owns a save) and run locks.

``FilesMixin`` is one part of ``Controller`` (see ``controller.py``): it reads and writes the
controller's state and emits its signals. Loading and saving run off the GUI thread through
``Controller.run_task``, each with its own callback; a save answers for the model it was started
for (``_model_id``), so a save that ends after a new run began does not claim the new model.
The plain functions say which files belong to a model: its autosave name, its own text, and
whether it can be continued on a text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from charlstm_core.errors import CharLSTMError, DecodeError, ModelFileError, unrepresentable
from charlstm_core.files import writer
from charlstm_core.files.text import display_path

from .state import State


def autosave_path(folder: str | os.PathLike[str], corpus_name: str) -> str:
    """A new autosave file in ``folder``, named after the text and the time: never one that is
    there already (two runs started within a second get ``-2``, ``-3``)."""
    stem = Path(corpus_name).stem or "model"
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:40]
    return writer.fresh_name(Path(folder) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.npz")


def continue_problem(model: Any, corpus: Any) -> str:
    """Why ``model`` cannot be continued on ``corpus`` ("" when it can): no checkpoint, no text,
    or characters of the text that the model's vocabulary lacks (the trainer would refuse)."""
    if model is None or model.train is None:
        return "Open a checkpoint or train a model to continue it."
    if corpus is None:
        return "Open a text to continue training on."
    missing = model.vocab.missing("".join(corpus.vocab.chars))
    if not missing:
        return ""
    trained_on = (model.train.corpus or {}).get("name") or "the text it was trained on"
    return unrepresentable(
        corpus.name,
        missing,
        f"Open {trained_on} (File ▸ Open the Model's Text) or train a new model on this text.",
    )


def model_text_candidates(
    model: Any, model_path: str | None, recent_texts: Sequence[str] = ()
) -> list[str]:
    """Existing files that may be the text ``model`` was trained on, likeliest first
    (``charlstm_core.files.own_text.text_candidates``: the path its checkpoint records, a file of
    that name beside the model file, recent texts of that name; each of the recorded size; opening
    it checks the content's SHA-256)."""
    if model is None or model.train is None:
        return []
    from charlstm_core.files.own_text import text_candidates

    return text_candidates(model.train.corpus, model_path, recent_texts)


class FilesMixin:
    """Opening texts and models, saving, and the run's file locks (a part of ``Controller``)."""

    # what the mixin uses of Controller (declared there)
    message: Any
    saved: Any
    corpus_changed: Any
    decode_failed: Any
    internal_error: Any
    model_opened: Any
    model_changed: Any
    history_reset: Any
    run_task: Callable[..., None]
    _set_busy: Callable[[str], None]
    _set_dirty: Callable[[bool], None]
    _record_model_file: Callable[[str], None]

    def open_text(self, path: str, encoding: str | None = None) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before opening another text.")
            return
        from charlstm_core.files import text as data

        self._loading_path = path
        self._set_busy(f"Loading {display_path(Path(path).name)}…")
        self.run_task(
            lambda: data.load_corpus(path, encoding=encoding), self._corpus_loaded,
            failed=self._corpus_failed,
        )  # fmt: skip

    def use_builtin_text(self) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before changing the text.")
            return
        from charlstm_core.files.builtin_text import builtin_corpus

        self._set_busy("Gathering the Python standard library…")
        self._loading_path = ""
        self.run_task(builtin_corpus, self._corpus_loaded, failed=self._corpus_failed)

    def open_model(self, path: str) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before opening a model.")
            return
        from charlstm_core.files import modelfile

        self._set_busy(f"Opening {display_path(Path(path).name)}…")
        self.run_task(
            lambda: modelfile.load_model(path), lambda mf: self._model_loaded(mf, path),
            failed=self._file_task_failed("Cannot open this model"),
        )  # fmt: skip

    def save_model(self, path: str) -> None:
        """Save the current model (a snapshot between two steps while training) atomically.

        The target follows the one guarded writer's rule (``charlstm_core.files.writer``: only
        over a model or a new name, never over the training text; a symlink is saved through; a
        folder, device or FIFO is refused) and must not be locked by another run; both are
        checked here first, so that the user hears at once.
        """
        try:
            writer.check_target(path, writer.Kind.MODEL, protect=self.protected_inputs())
        except ModelFileError as exc:
            self.message.emit("The model was not saved", str(exc))
            return
        if self._train_worker is not None and self.state is not State.STOPPING:
            owner = self._model_id
            self._train_worker.request_snapshot(lambda mf: self._save_async(mf, path, owner))
            self._set_busy(f"Saving {display_path(Path(path).name)}…")
            return
        if self._train_worker is not None:  # stopping: save the final model once it arrives
            self._pending_save = path
            self._set_busy(f"Saving {display_path(Path(path).name)}…")
            return
        if self.model is None:
            self.message.emit("Nothing to save", "Train a model or open one first.")
            return
        self._save_async(self.model, path)

    def protected_inputs(self) -> dict[str, str | None]:
        """The files no save or export of the app may replace: the training text."""
        return {"the training text": getattr(getattr(self, "corpus", None), "path", None)}

    def _save_async(self, mf: Any, path: str, model_id: int | None = None) -> None:
        from charlstm_core.files import modelfile

        self._set_busy(f"Saving {display_path(Path(path).name)}…")
        step = mf.train.step if mf.train is not None else 0
        owner = self._model_id if model_id is None else model_id
        self.run_task(
            lambda: modelfile.save_model(path, mf), lambda out: self._saved(out, owner, step),
            failed=self._file_task_failed("The model was not saved"),
        )  # fmt: skip

    def _saved(self, out: Any, owner: int, step: int) -> None:
        self._set_busy("")
        if owner == self._model_id:  # else it saved a model that is no longer current
            self.model_path = str(out)
            self._relock_model_file(self.model_path)
            self._saved_step = max(self._saved_step, step)
            current = self.last_step.step if self.last_step is not None else step
            self._set_dirty(current > self._saved_step)
            self._record_model_file(self.model_path)
        self.saved.emit(str(out))

    def unsaved_autosave_path(self, autosave_dir: str) -> str:
        """Where unsaved work goes when there is no time to ask (the session ends): the run's
        own autosave file, else a new one in ``autosave_dir``; never the user's model file."""
        if self.run_checkpoint and self.model_path != self.run_checkpoint:
            return self.run_checkpoint
        name = self.corpus.name if self.corpus is not None else "model"
        return autosave_path(autosave_dir, name)

    def save_now(self, path: str, *, user_file: bool = True) -> str:
        """Save synchronously (used on close, after the workers are stopped); ``user_file``
        False: an autosave the session's end writes, not a file the run is named after."""
        from charlstm_core.files import modelfile

        out = modelfile.save_model(path, self.model)
        self.model_path = str(out)
        if self.model.train is not None:
            self._saved_step = max(self._saved_step, self.model.train.step)
        self._set_dirty(False)
        if user_file:
            self._record_model_file(str(out))
        self.saved.emit(str(out))
        return str(out)

    def _corpus_loaded(self, corpus: Any) -> None:
        self._set_busy("")
        self.corpus = corpus
        self.corpus_changed.emit(corpus)

    def _corpus_failed(self, exc: Exception, tb: str) -> None:
        if isinstance(exc, DecodeError):
            self._set_busy("")
            self.decode_failed.emit(self._loading_path, str(exc))  # offer another encoding
        else:
            self._file_task_failed("Cannot use this text")(exc, tb)

    def _file_task_failed(self, title: str) -> Callable[[Exception, str], None]:
        """What a failed load or save says: the engine's message under ``title``, a file
        system error as a "File problem"; anything else is a bug (an error report)."""

        def failed(exc: Exception, tb: str) -> None:
            self._set_busy("")
            if isinstance(exc, CharLSTMError):
                self.message.emit(title, str(exc))
            elif isinstance(exc, OSError):
                what = exc.strerror or str(exc)
                self.message.emit("File problem", f"{what}: {exc.filename or ''}".strip(": "))
            else:
                self.internal_error.emit(tb)

        return failed

    def _model_loaded(self, mf: Any, path: str) -> None:
        self._set_busy("")
        self._opened(mf, path)

    def _opened(self, mf: Any, path: str) -> None:
        self._model_id += 1
        self.model = mf
        self.model_path = path
        self.model_source = display_path(Path(path).name)
        self.last_step = None
        self.history_run_id = None
        self.best_val = mf.train.best_val_loss if mf.train is not None else None
        self._saved_step = mf.train.step if mf.train is not None else 0
        self.history.clear()
        self.history_reset.emit()
        if mf.train is not None:
            self.train_config = mf.train.config
            cfg = mf.train.config
            self.history.load(mf.train.history, cfg.batch_size * cfg.seq_len, mf.train.rollbacks)
        self.model_config = mf.config
        self._set_dirty(False)
        self.model_opened.emit(mf, path)
        self.model_changed.emit(mf, self.model_source)

    def _lock_run_files(self, model_file: str | None, ckpt: str | None) -> str | None:
        """Take the run's locks: ``""`` when done, the problem when ``model_file`` is held by
        another run (the run may go on without that file), None (and a message) when the
        autosave file cannot be locked (the run must not start)."""
        from charlstm_core.files import modelfile

        self.release_locks()
        problem = ""
        if model_file:
            try:
                self._file_lock = modelfile.ModelLock(model_file).acquire()
            except ModelFileError as exc:
                problem = str(exc)
        if ckpt:
            try:
                self._ckpt_lock = modelfile.ModelLock(ckpt).acquire()
            except ModelFileError as exc:
                self.release_locks()
                self.message.emit("Cannot autosave", f"{exc} Choose another autosave folder.")
                return None
        return problem

    def _relock_model_file(self, path: str) -> None:
        """The running model was saved to ``path``: that file is now the one its run holds."""
        if self._train_worker is None:
            return
        from charlstm_core.files import modelfile

        old = self._file_lock
        if old is not None and os.path.realpath(path) == old.real:
            return
        try:
            self._file_lock = modelfile.ModelLock(path).acquire()
        except CharLSTMError:
            self._file_lock = None
        if old is not None:
            old.release()

    def release_locks(self) -> None:
        """Give up the run's locks (the run has ended)."""
        for lock in (self._file_lock, self._ckpt_lock):
            if lock is not None:
                lock.release()
        self._file_lock = self._ckpt_lock = None

    def _checkpoint_path(self, autosave_dir: str) -> str:
        """A new autosave file in ``autosave_dir`` for the run about to start (the folder is
        made); "" (and a message) when the folder cannot be made."""
        try:
            Path(autosave_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.message.emit(
                "Autosave folder",
                f"Cannot create the autosave folder "
                f"{autosave_dir}: {exc.strerror}. Choose another one in the "
                "settings.",
            )
            return ""
        return autosave_path(autosave_dir, self.corpus.name)

    def _forget_model(self) -> None:
        """A new model: it has no file until the user gives it one, and the previous model
        (saved or discarded by the user) is no longer the current one."""
        self._model_id += 1
        self.model = None
        self.model_source = ""
        self.history_run_id = None
        self.history.clear()
        self.best_val = None
        self.model_path = None
        self._saved_step = 0
        self._set_dirty(False)
        self.history_reset.emit()
        self.model_changed.emit(None, "")
