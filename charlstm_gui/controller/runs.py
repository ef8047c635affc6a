"""The run store for the controller (``Runs``).

Every training run is recorded in the run store (``charlstm_core.runs``) by its training session,
on the worker's thread (``record_runs`` and ``runs_db`` say how); ``Runs`` opens the store on
first use, lists, renames and deletes runs, names a run's model file when the user saves it, and
says each problem of the store once, however many runs meet it (training goes on regardless).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from charlstm_core.errors import CharLSTMError

from .tasks import Feedback


class Runs:
    """The run store as the app uses it, opened once and its problems said once; which run
    trains now (``current_run_id``) and whose curve the plot shows (``history_run_id``)."""

    def __init__(
        self,
        run_task: Callable[..., None],
        feedback: Feedback,
        *,
        changed: Callable[[], None],
        problem: Callable[[str], None],
    ) -> None:
        """``changed()``: a run began or ended, or was renamed or deleted; ``problem(text)``:
        the store cannot be used (one sentence)."""
        self.run_task, self.feedback = run_task, feedback
        self._changed, self._problem = changed, problem
        self.record_runs = True  # record every training run in the run store
        self.runs_db: str | None = None  # the store's file; None: charlstm_core.runs.default
        self.current_run_id: int | None = None  # the store's id of the run training now
        self.history_run_id: int | None = None  # the run whose curve ``history`` shows
        self.problem_text = ""  # the store's problem, said once ("" when none)
        self._store: Any = None
        self._store_path: str | None = None

    def db_path(self) -> str:
        from charlstm_core.runs import default_db_path

        return str(self.runs_db or default_db_path())

    def began(self, run_id: int) -> None:
        """The session recorded its run as ``run_id``: it trains now, and the plot shows it."""
        self.current_run_id = self.history_run_id = run_id
        self._changed()

    def ended(self) -> int | None:
        """The run training now ended: its id (None when none was recorded)."""
        ended, self.current_run_id = self.current_run_id, None
        return ended

    def record_model_file(self, path: str, autosave: str | None = None) -> None:
        """The current model was saved to ``path``, a file of the user's: the run whose curve
        ``history`` shows now names that file as its model and, unless someone chose its name,
        is named after it (``charlstm_core.runs.naming``). ``autosave``, the run's own autosave
        file, is its model file already."""
        run_id = self.history_run_id
        if run_id is None or not path:
            return
        if autosave and os.path.realpath(path) == os.path.realpath(autosave):
            return
        store = self.run_store()
        if store is None:
            return
        try:
            store.model_saved(run_id, path)
        except CharLSTMError as exc:
            self.report_problem(str(exc))
            return
        self._changed()

    def report_problem(self, text: str) -> None:
        """One message per distinct problem, however many runs meet it."""
        if text != self.problem_text:
            self.problem_text = text
            self._problem(text)

    def run_store(self) -> Any:
        """The open run store, or None (its problem reported once through ``problem``)."""
        from charlstm_core.runs import RunStore

        path = self.db_path()
        if self._store is not None and self._store_path == path:
            return self._store
        self.close()
        try:
            self._store = RunStore.open(path)
        except CharLSTMError as exc:
            self.report_problem(str(exc))
            return None
        self._store_path = path
        self.problem_text = ""
        return self._store

    def list_runs(self) -> list[Any]:
        """Every recorded run, newest first ([] when the store cannot be read)."""
        store = self.run_store()
        if store is None:
            return []
        try:
            return store.list_runs()
        except CharLSTMError as exc:
            self.report_problem(str(exc))
            return []

    def rename_run(self, run_id: int, name: str) -> bool:
        return self._change_run("Cannot rename the run", lambda s: s.rename(run_id, name))

    def delete_run(self, run_id: int, *, with_model: bool = False) -> bool:
        """Remove a run from the store; its model file only with ``with_model``."""
        return self._change_run(
            "Cannot delete the run", lambda s: s.delete(run_id, with_model=with_model)
        )

    def _change_run(self, title: str, change: Callable[[Any], Any]) -> bool:
        store = self.run_store()
        if store is None:
            self.feedback.message(title, self.problem_text or "The runs database cannot be opened.")
            return False
        try:
            change(store)
        except CharLSTMError as exc:
            self.feedback.message(title, str(exc))
            return False
        self._changed()
        return True

    def load_curves(self, run_ids: list[int], done: Callable[[dict[int, Any]], None]) -> None:
        """Read the runs' curves off the GUI thread; ``done({id: charlstm_core.runs.Curves})``
        follows."""
        store = self.run_store()
        if store is not None and run_ids:
            ids = list(run_ids)
            self.run_task(lambda: store.curves(ids), done)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
