"""Device choice and listing (charlstm_core.engine.devices), tested with fake ``cupy`` modules: no
GPU
needed."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.devices import (
    DeviceReport,
    list_devices,
    make_engine,
    parse_choice,
    resolve_device,
)
from charlstm_core.engine.gpu import XpEngine
from charlstm_core.errors import ConfigError, DeviceUnavailableError


class FakeCudaError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"cudaError {status}")
        self.status = status


def fake_cupy(*, count=1, runtime=12040, driver=12080, count_error=None, props=None):
    """A stand-in for ``cupy`` with just what ``list_devices`` reads."""

    def get_count():
        if count_error is not None:
            raise FakeCudaError(count_error)
        return count

    rt = types.SimpleNamespace(
        runtimeGetVersion=lambda: runtime,
        driverGetVersion=lambda: driver,
        getDeviceCount=get_count,
        getDeviceProperties=lambda i: (props or {}).get(
            i, {"name": b"NVIDIA H200", "totalGlobalMem": 141 * 2**30, "major": 9, "minor": 0}
        ),
        CUDARuntimeError=FakeCudaError,
    )

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    cuda = types.SimpleNamespace(runtime=rt, Device=Device)
    return types.SimpleNamespace(__version__="13.6.0", cuda=cuda)


def importer_of(module=None, error: Exception | None = None):
    def imp(name: str):
        assert name == "cupy"
        if error is not None:
            raise error
        return module

    return imp


MISSING = importer_of(error=ImportError("No module named 'cupy'"))


def test_choices_parse_and_bad_choice_is_one_clear_line() -> None:
    assert parse_choice("auto") == ("auto", None)
    assert parse_choice("GPU:1") == ("gpu", 1)
    with pytest.raises(ConfigError, match="auto, cpu, gpu or gpu:N"):
        parse_choice("tpu")


def test_cpu_never_imports_cupy() -> None:
    def refuse(name):
        raise AssertionError("cupy imported for the CPU")

    assert resolve_device("cpu", importer=refuse).kind == "cpu"


def test_importing_the_engine_does_not_import_cupy() -> None:
    code = (
        "import sys, charlstm_core.cli.parser, charlstm_core.training.trainer, "
        "charlstm_core.engine.devices; "
        "print('cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_cupy_auto_falls_back_to_cpu_and_gpu_says_how_to_install() -> None:
    assert resolve_device("auto", importer=MISSING).kind == "cpu"
    with pytest.raises(DeviceUnavailableError) as e:
        resolve_device("gpu", importer=MISSING)
    assert (
        str(e.value)
        == "The GPU cannot be used: CuPy is not installed: pip install 'charlstm[gpu]'."
    )
    rep = list_devices(importer=MISSING)
    assert not rep.usable and rep.cupy_version is None


TOO_OLD = "the NVIDIA driver supports CUDA 12.2 but this CuPy needs CUDA 13.0"


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        (fake_cupy(count_error=100), "no CUDA device found"),
        (fake_cupy(count=0), "no CUDA device found"),
        (fake_cupy(driver=0), "no NVIDIA driver found"),
        (fake_cupy(count_error=35, runtime=13000, driver=12020), TOO_OLD),
        (fake_cupy(runtime=12080, driver=12020), "install the CuPy wheel for an older CUDA "
         "(pip install cupy-cuda11x)"),
        (fake_cupy(count_error=999), "CUDA cannot list the devices (cudaError 999)"),
    ],
)  # fmt: skip
def test_each_unusable_case_has_its_reason(fake, reason) -> None:
    rep = list_devices(importer=importer_of(fake))
    assert not rep.usable and reason in rep.reason
    assert resolve_device("auto", importer=importer_of(fake)).kind == "cpu"
    with pytest.raises(DeviceUnavailableError, match="The GPU cannot be used"):
        resolve_device("gpu", importer=importer_of(fake))
    assert any(reason in line for line in rep.lines())


def test_broken_cupy_install_is_a_reason_not_a_crash() -> None:
    rep = list_devices(importer=importer_of(error=OSError("libcudart.so.12: cannot open")))
    assert rep.reason == "CuPy cannot be imported (libcudart.so.12: cannot open)"


def test_usable_gpus_are_listed_with_name_memory_and_versions() -> None:
    props = {
        0: {"name": b"NVIDIA H200", "totalGlobalMem": 141 * 2**30, "major": 9, "minor": 0},
        1: {"name": b"NVIDIA RTX 4090", "totalGlobalMem": 24 * 2**30, "major": 8, "minor": 9},
    }
    fake = fake_cupy(count=2, props=props)
    rep = list_devices(importer=importer_of(fake))
    assert rep.usable and rep.reason is None
    assert (rep.cupy_version, rep.cuda_runtime, rep.cuda_driver) == ("13.6.0", "12.4", "12.8")
    assert [g.label for g in rep.gpus] == [
        "GPU 0: NVIDIA H200 (141 GiB)",
        "GPU 1: NVIDIA RTX 4090 (24 GiB)",
    ]
    assert "CUDA runtime: 12.4, driver supports CUDA 12.8" in rep.lines()
    auto = resolve_device("auto", importer=importer_of(fake))
    assert auto.kind == "gpu" and auto.gpu.index == 0 and auto.xp is fake
    assert resolve_device("gpu:1", importer=importer_of(fake)).label.startswith("GPU 1: NVIDIA RTX")
    with pytest.raises(DeviceUnavailableError, match="There is no GPU 2: found 2"):
        resolve_device("gpu:2", importer=importer_of(fake))


def test_make_engine_picks_the_engine_for_the_backend() -> None:
    cfg = ModelConfig(vocab_size=5, hidden_size=8)
    assert isinstance(make_engine("cpu", cfg), CpuEngine)
    fake = fake_cupy()
    eng = make_engine("gpu", cfg, importer=importer_of(fake))
    assert isinstance(eng, XpEngine) and eng.xp is fake and eng.label.startswith("GPU 0")


def test_report_lines_without_cupy() -> None:
    rep = DeviceReport(None, None, None, (), "CuPy is not installed: pip install 'charlstm[gpu]'")
    assert rep.lines() == [
        "CPU: NumPy engine (always available)",
        "CuPy: not installed",
        "GPU: not usable: CuPy is not installed: pip install 'charlstm[gpu]'",
    ]


# ---------------------------------------------------------------- the command line


def _run(capsys, *argv):
    from charlstm_core.cli import parser as cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.txt"
    path.write_text("the cat sat on the mat and the dog ran far\n" * 60)
    return path


def test_devices_command_lists_what_was_found(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    code, out, _ = _run(capsys, "devices")
    assert code == 0 and "GPU: not usable: CuPy is not installed: pip install" in out
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    code, out, _ = _run(capsys, "devices")
    assert code == 0 and "GPU 0: NVIDIA H200 (141 GiB), compute capability 9.0" in out
    assert "CuPy: 13.6.0" in out


def test_train_on_a_missing_gpu_is_one_line_and_writes_nothing(text, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    code, _, err = _run(capsys, "train", text, "--steps", 2, "--hidden", 8, "--device", "gpu")
    assert code == 1 and not (text.parent / "t.npz").exists()
    assert err.strip() == (
        "charlstm: error: The GPU cannot be used: CuPy is not installed: "
        "pip install 'charlstm[gpu]'."
    )
    code, _, err = _run(capsys, "sample", "m.npz", "--device", "tpu")
    assert code == 2 and "auto, cpu, gpu or gpu:N" in err
    code, _, err = _run(capsys, "train", text, "--steps", 2, "--hidden", 8, "--device", "auto")
    assert code == 0 and "2 steps on CPU; saving to" in err
    for cmd in (["sample", "t.npz", "--length", 5], ["eval", "t.npz", text]):
        code, _, err = _run(capsys, *cmd, "--device", "gpu")
        assert code == 1 and "CuPy is not installed" in err
        assert _run(capsys, *cmd, "--device", "cpu")[0] == 0


def test_step_time_is_measured_on_the_chosen_device(monkeypatch) -> None:
    from charlstm_core.config import ModelConfig
    from charlstm_core.engine.gpu import XpEngine
    from charlstm_core.training import plan

    cpu = plan.measure_timing(8, 16, 1, 4, 8)  # the CPU engine, as before
    assert cpu.step_s > 0 and cpu.eval_char_s > 0 and cpu.sample_char_s > 0
    # the GPU path (the array engine's step, validation and sampling), here over NumPy
    import numpy as np

    calls = []

    class Counting(XpEngine):
        def loss_and_grads(self, *args):
            calls.append(1)
            return super().loss_and_grads(*args)

    eng = Counting(ModelConfig(vocab_size=8, hidden_size=16, num_layers=1), np)
    dev = plan._measure(8, 16, 1, 4, 8, 0.0, "float32", 1.0, eng)
    assert calls and dev.step_s > 0 and dev.eval_char_s > 0 and dev.sample_char_s > 0
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(DeviceUnavailableError, match="CuPy is not installed"):
        plan.measure_timing(8, 16, 1, 4, 8, device="gpu:0")


def test_gpu_engine_selects_its_device_on_every_call(monkeypatch) -> None:
    fake = fake_cupy(count=2)
    entered = []

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            entered.append(self.index)

        def __exit__(self, *exc):
            return False

    fake.cuda.Device = Device
    fake.asarray = lambda a: a
    eng = make_engine("gpu:1", ModelConfig(vocab_size=5, hidden_size=8), importer=importer_of(fake))
    eng.to_device(1)
    eng.to_device(2)
    assert entered == [1, 1]
