"""Texts and model files for the controller: opening, saving (who owns a save) and run locks.

``Files`` holds the current model and what is known of its file: where it was opened or saved,
whether it has training that is not saved (``dirty``), and the locks of the run training it.
Loading and saving run off the GUI thread (``run_task``), each with its own callback; a save
answers for the model it was started for (``model_id``), so a save that ends after a new run
began does not claim the new model. What it learns goes to the controller through the callbacks
it is given. The plain functions say which files belong to a model: its autosave name, its own
text, and whether it can be continued on a text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charlstm_core.errors import CharLSTMError, DecodeError, ModelFileError, unrepresentable
from charlstm_core.files import writer
from charlstm_core.files.text import display_path

from .tasks import Feedback


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


def _load_model(path: str) -> Any:
    from charlstm_core.files import modelfile

    return modelfile.load_model(path)


def _save_model(path: str, mf: Any) -> Any:
    from charlstm_core.files import modelfile

    return modelfile.save_model(path, mf)


def _lock(path: str) -> Any:
    from charlstm_core.files import modelfile

    return modelfile.ModelLock(path).acquire()


@dataclass(frozen=True)
class ModelIO:
    """How model files are read, written (atomically, by the one guarded writer) and locked;
    the module's functions are looked up at each call, so a test may replace them."""

    load: Callable[[str], Any] = _load_model
    save: Callable[[str, Any], Any] = _save_model
    lock: Callable[[str], Any] = _lock  # a held lock (``.real``, ``.release()``) or ModelFileError


class Files:
    """The current model and its file, the texts, and the run's file locks; opening and saving
    off the GUI thread, each save answering for the model that was current when it began."""

    def __init__(
        self,
        run_task: Callable[..., None],
        feedback: Feedback,
        *,
        text_loaded: Callable[[Any], None],
        undecodable: Callable[[str, str], None],
        model_loaded: Callable[[Any, str], None],
        saved: Callable[[str], None],
        filed: Callable[[str], None],
        dirty_changed: Callable[[bool], None],
        protected: Callable[[], dict[str, str | None]],
        io: ModelIO | None = None,
    ) -> None:
        """``text_loaded(corpus)``, ``undecodable(path, message)`` (offer another encoding),
        ``model_loaded(mf, path)`` (after it became current), ``saved(path)`` (any save that
        ended), ``filed(path)`` (the current model is now in that file of the user's),
        ``dirty_changed(dirty)``; ``protected()``: the files no save may replace."""
        self.run_task, self.feedback, self.io = run_task, feedback, io or ModelIO()
        self._text_loaded, self._undecodable, self._model_loaded = (
            text_loaded, undecodable, model_loaded,
        )  # fmt: skip
        self._saved, self._filed, self._dirty_changed = saved, filed, dirty_changed
        self.protected = protected
        self.model: Any = None  # the newest ModelFile: opened, or the last snapshot of training
        self.model_path: str | None = None  # where the user saved or opened it
        self.model_source = ""  # how to name it when it has no file
        # Which model is current: a new run or an opened file makes a new one. A save answers
        # for the model it was started for; only that model gets the saved file as its own.
        self.model_id = 0
        self.dirty = False
        self.saved_step = 0  # the newest step of the current model that is in a file
        self.trained_step: int | None = None  # the newest step trained (None: not training)
        # held for the running run: its model file (where the user saved or opened it) and its
        # autosave file, so that no other run, here or in the command line, writes them
        self.model_lock: Any = None
        self.autosave_lock: Any = None
        self._run_locked = False

    # ---------------------------------------------------------------- the current model
    def set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self._dirty_changed(dirty)

    def trained_to(self, step: int) -> None:
        """The current model has trained to ``step``: unsaved, unless a file has that step."""
        self.trained_step = step
        if step > self.saved_step:
            self.set_dirty(True)

    def adopt(self, mf: Any, path: str) -> None:
        """``mf``, opened from ``path``, is the current model now (saved: not dirty)."""
        self.model_id += 1
        self.model, self.model_path = mf, path
        self.model_source = display_path(Path(path).name)
        self.saved_step = mf.train.step if mf.train is not None else 0
        self.trained_step = None
        self.set_dirty(False)

    def forget(self) -> None:
        """A new model: it has no file until the user gives it one, and the previous model
        (saved or discarded by the user) is no longer the current one."""
        self.model_id += 1
        self.model, self.model_path, self.model_source = None, None, ""
        self.saved_step, self.trained_step = 0, None
        self.set_dirty(False)

    # ---------------------------------------------------------------- opening
    def open_text(self, path: str, encoding: str | None = None) -> None:
        from charlstm_core.files import text as data

        self.feedback.busy(f"Loading {display_path(Path(path).name)}…")
        self.run_task(
            lambda: data.load_corpus(path, encoding=encoding), self._corpus_loaded,
            failed=lambda exc, tb: self._corpus_failed(path, exc, tb),
        )  # fmt: skip

    def use_builtin_text(self) -> None:
        from charlstm_core.files.builtin_text import builtin_corpus

        self.feedback.busy("Gathering the Python standard library…")
        self.run_task(
            builtin_corpus, self._corpus_loaded,
            failed=lambda exc, tb: self._corpus_failed("", exc, tb),
        )  # fmt: skip

    def open_model(self, path: str) -> None:
        self.feedback.busy(f"Opening {display_path(Path(path).name)}…")
        self.run_task(
            lambda: self.io.load(path), lambda mf: self._model_opened(mf, path),
            failed=self.file_task_failed("Cannot open this model"),
        )  # fmt: skip

    def _corpus_loaded(self, corpus: Any) -> None:
        self.feedback.busy("")
        self._text_loaded(corpus)

    def _corpus_failed(self, path: str, exc: Exception, tb: str) -> None:
        if isinstance(exc, DecodeError):
            self.feedback.busy("")
            self._undecodable(path, str(exc))  # offer another encoding
        else:
            self.file_task_failed("Cannot use this text")(exc, tb)

    def _model_opened(self, mf: Any, path: str) -> None:
        self.feedback.busy("")
        self.adopt(mf, path)
        self._model_loaded(mf, path)

    def file_task_failed(self, title: str) -> Callable[[Exception, str], None]:
        """What a failed load or save says: the engine's message under ``title``, a file
        system error as a "File problem"; anything else is a bug (an error report)."""

        def failed(exc: Exception, tb: str) -> None:
            self.feedback.busy("")
            if isinstance(exc, OSError) and not isinstance(exc, CharLSTMError):
                what = exc.strerror or str(exc)
                self.feedback.message("File problem", f"{what}: {exc.filename or ''}".strip(": "))
            else:
                self.feedback.failure(exc, tb, title)

        return failed

    # ---------------------------------------------------------------- saving
    def check_target(self, path: str) -> bool:
        """Whether the model may be saved to ``path``, by the one guarded writer's rule
        (``charlstm_core.files.writer``: only over a model or a new name, never over the
        training text; a symlink is saved through; a folder, device or FIFO is refused); says
        why not at once."""
        try:
            writer.check_target(path, writer.Kind.MODEL, protect=self.protected())
        except ModelFileError as exc:
            self.feedback.message("The model was not saved", str(exc))
            return False
        return True

    def saving(self, path: str) -> None:
        self.feedback.busy(f"Saving {display_path(Path(path).name)}…")

    def save_current(self, path: str) -> None:
        """Save the current model to ``path`` off the GUI thread ("Nothing to save" if none)."""
        if self.model is None:
            self.feedback.message("Nothing to save", "Train a model or open one first.")
            return
        self.save(self.model, path)

    def save(self, mf: Any, path: str, model_id: int | None = None) -> None:
        """Save ``mf`` (a copy of model ``model_id``, by default the current one) to ``path``
        off the GUI thread; the file becomes the model's own only if it is still current."""
        self.saving(path)
        step = mf.train.step if mf.train is not None else 0
        owner = self.model_id if model_id is None else model_id
        self.run_task(
            lambda: self.io.save(path, mf), lambda out: self._saved_to(out, owner, step),
            failed=self.file_task_failed("The model was not saved"),
        )  # fmt: skip

    def _saved_to(self, out: Any, owner: int, step: int) -> None:
        self.feedback.busy("")
        if owner == self.model_id:  # else it saved a model that is no longer current
            self.model_path = str(out)
            self._relock_model_file(self.model_path)
            self.saved_step = max(self.saved_step, step)
            current = self.trained_step if self.trained_step is not None else step
            self.set_dirty(current > self.saved_step)
            self._filed(self.model_path)
        self._saved(str(out))

    def save_now(self, path: str, *, user_file: bool = True) -> str:
        """Save the current model synchronously (used on close, after the workers are
        stopped); ``user_file`` False: an autosave the session's end writes, not a file the run
        is named after."""
        out = str(self.io.save(path, self.model))
        self.model_path = out
        if self.model.train is not None:
            self.saved_step = max(self.saved_step, self.model.train.step)
        self.set_dirty(False)
        if user_file:
            self._filed(out)
        self._saved(out)
        return out

    # ---------------------------------------------------------------- the run's files
    def checkpoint_path(self, autosave_dir: str, text_name: str) -> str:
        """A new autosave file in ``autosave_dir`` for the run about to start (the folder is
        made); "" (and a message) when the folder cannot be made."""
        try:
            Path(autosave_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.feedback.message(
                "Autosave folder",
                f"Cannot create the autosave folder {autosave_dir}: {exc.strerror}. Choose "
                "another one in the settings.",
            )
            return ""
        return autosave_path(autosave_dir, text_name)

    def lock_run(self, model_file: str | None, ckpt: str | None) -> str | None:
        """Take the run's locks: ``""`` when done, the problem when ``model_file`` is held by
        another run (the run may go on without that file), None (and a message) when the
        autosave file cannot be locked (the run must not start)."""
        self.release_locks()
        problem = ""
        if model_file:
            try:
                self.model_lock = self.io.lock(model_file)
            except ModelFileError as exc:
                problem = str(exc)
        if ckpt:
            try:
                self.autosave_lock = self.io.lock(ckpt)
            except ModelFileError as exc:
                self.release_locks()
                self.feedback.message("Cannot autosave", f"{exc} Choose another autosave folder.")
                return None
        self._run_locked = True
        return problem

    def _relock_model_file(self, path: str) -> None:
        """The running model was saved to ``path``: that file is now the one its run holds."""
        if not self._run_locked:
            return
        old = self.model_lock
        if old is not None and os.path.realpath(path) == old.real:
            return
        try:
            self.model_lock = self.io.lock(path)
        except CharLSTMError:
            self.model_lock = None
        if old is not None:
            old.release()

    def release_locks(self) -> None:
        """Give up the run's locks (the run has ended)."""
        for lock in (self.model_lock, self.autosave_lock):
            if lock is not None:
                lock.release()
        self.model_lock = self.autosave_lock = None
        self._run_locked = False
