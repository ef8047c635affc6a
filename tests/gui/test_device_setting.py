"""The Device setting: CPU and each usable GPU, the reason when none is, GPU presets, status bar."""

from __future__ import annotations

from charlstm_core.engine.devices import DeviceReport, GpuInfo
from PySide6.QtCore import QSettings, Qt

NONE = DeviceReport("13.6.0", "12.4", None, (), "no NVIDIA driver found")
TWO = DeviceReport(
    "13.6.0",
    "12.4",
    "12.8",
    (GpuInfo(0, "NVIDIA H200", 141 * 2**30, "9.0"), GpuInfo(1, "NVIDIA L4", 24 * 2**30, "8.9")),
    None,
)


def _items(combo):
    return [(combo.itemText(i), combo.model().item(i).isEnabled()) for i in range(combo.count())]


def _listed(window, qtbot) -> None:
    """Wait for the window's own device listing (a background task) to arrive."""
    qtbot.waitUntil(lambda: window.form.device.itemText(1) != "GPU — looking…", timeout=5000)


def test_without_a_gpu_the_entry_is_disabled_with_the_reason(window, qtbot) -> None:
    _listed(window, qtbot)
    form = window.form
    form.set_devices(NONE)
    assert _items(form.device) == [("CPU", True), ("GPU — not usable", False)]
    tip = form.device.itemData(1, Qt.ItemDataRole.ToolTipRole)
    assert tip == "No usable GPU: no NVIDIA driver found"
    assert form.device.toolTip().endswith("\nNo usable GPU: no NVIDIA driver found.")
    assert form.device_choice() == "cpu"
    assert window.status["device"].text() == "CPU"
    i = form.preset.findText("GPU: large")
    assert i >= 0 and not form.preset.model().item(i).isEnabled()


def test_gpus_are_listed_unlock_the_gpu_presets_and_reach_the_trainer(window, qtbot, monkeypatch):
    _listed(window, qtbot)
    form = window.form
    form.set_devices(TWO)
    assert _items(form.device) == [
        ("CPU", True),
        ("GPU 0: NVIDIA H200 (141 GiB)", True),
        ("GPU 1: NVIDIA L4 (24 GiB)", True),
    ]
    assert form.device_choice() == "gpu:0"  # a first start with a GPU picks it
    assert window.status["device"].text() == "GPU 0: NVIDIA H200 (141 GiB)"
    for name in ("GPU: large", "GPU: largest"):
        assert form.preset.model().item(form.preset.findText(name)).isEnabled()
    form.device.setCurrentIndex(2)
    seen = {}
    monkeypatch.setattr(window.ctl, "start_training", lambda *a, **kw: seen.update(kw))
    from charlstm_core.files.text import corpus_from_text

    window.ctl.corpus = corpus_from_text("the cat sat on the mat\n" * 400)
    window.train_new()
    assert seen["device"] == "gpu:1"


def test_the_choice_is_remembered_and_cpu_stays_cpu_when_gpus_appear(window, qtbot) -> None:
    _listed(window, qtbot)
    form = window.form
    form.set_devices(TWO)
    form.device.setCurrentIndex(0)
    s = QSettings()
    form.save_settings(s)
    assert s.value("training/device", type=str) == "cpu"
    form.set_devices(NONE)
    form.set_devices(TWO)
    assert form.device_choice() == "cpu"
    s.setValue("training/device", "gpu:1")
    form.restore_settings(s, "/tmp")
    form.set_devices(None)  # still looking: the CPU for now
    assert form.device_choice() == "cpu"
    form.set_devices(TWO)
    assert form.device_choice() == "gpu:1"
