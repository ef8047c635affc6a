"""A run's name (issue 20, point 6): automatic until chosen; a saved model file names it; a
sweep's runs say what differs, in the names a person types."""

from __future__ import annotations

from charlstm_core.runs import RunRecorder, RunStore, default_db_path
from charlstm_core.runs.naming import default_name, is_automatic, model_file_name, setting_name
from helpers import TINY, make_text
from helpers import run_cli as run

MODEL = {"num_layers": 1, "hidden_size": 16}


def new_run(store: RunStore, name: str | None = None, model_path: str | None = None) -> int:
    rec = RunRecorder(
        store, text={"name": "words.txt", "sha256": "ab", "size": 3}, model_config=MODEL,
        train_config={"batch_size": 4, "seq_len": 8}, name=name, model_path=model_path,
    )  # fmt: skip
    rec.finish(status="finished")
    assert rec.run_id is not None
    return rec.run_id


def test_names():
    assert default_name("words.txt", MODEL) == "words 1x16"
    assert model_file_name("/m/A.npz") == "A" and model_file_name("/m/A.NPZ") == "A"
    assert model_file_name("/m/model") == "model" and model_file_name(".npz") == ".npz"
    assert is_automatic("words 1x16", "words.txt", MODEL, None)
    assert is_automatic("A", "words.txt", MODEL, "/m/A.npz")  # named after its earlier file
    assert not is_automatic("lr=0.01", "words.txt", MODEL, "/m/A.npz")
    assert [setting_name(k) for k in ("hidden_size", "lr", "seq_len", "lr_schedule")] == [
        "hidden", "lr", "seq-len", "schedule"
    ]  # fmt: skip


def test_a_saved_model_names_its_run_unless_someone_named_it(tmp_path):
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        auto = new_run(store, model_path=str(tmp_path / "autosave.npz"))
        chosen = new_run(store, name="my run")
        sweep = new_run(store, name="lr=0.005 hidden=256")
        assert store.get(auto).name == "words 1x16"
        run = store.model_saved(auto, tmp_path / "A.npz")
        assert run.name == "A" and run.model_path == str(tmp_path / "A.npz")
        assert store.model_saved(auto, tmp_path / "B.npz").name == "B"  # still automatic
        for run_id, name in ((chosen, "my run"), (sweep, "lr=0.005 hidden=256")):
            run = store.model_saved(run_id, tmp_path / "C.npz")
            assert run.name == name and run.model_path == str(tmp_path / "C.npz")


def test_the_runs_table_shows_each_runs_model_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "words.txt"
    text.write_text(make_text(2000), encoding="utf-8")
    for out in ("first.npz", "second.npz"):
        assert run(capsys, "train", text, *TINY, "--steps", 2, "--out", out, "-q")[0] == 0
    code, out, _ = run(capsys, "runs")
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["id", "name", "text", "model", "file", "size"]
    assert "second.npz" in rows[0] and "first.npz" in rows[1]
    with RunStore.open(default_db_path()) as store:
        assert [r.model_path for r in store.list_runs()] == [
            str(tmp_path / "second.npz"), str(tmp_path / "first.npz")
        ]  # fmt: skip


def test_a_model_file_whose_name_is_not_utf8_names_the_run_shown_escaped(tmp_path):
    odd = tmp_path / "caf\udcff.npz"  # the byte 0xFF in a Linux file name
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = new_run(store, model_path=str(tmp_path / "auto.npz"))
        run = store.model_saved(run_id, odd)
        assert run.name == "caf\\xff" and run.model_path == str(tmp_path / "auto.npz")
