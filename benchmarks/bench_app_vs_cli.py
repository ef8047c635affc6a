"""The app against the command line: steps trained in the same minutes with the same settings.

Launches the real app (``charlstm_gui.app.main``, as ``charlstm-gui TEXT`` does) in a child
process with a fresh profile (temporary ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME`` and
``CHARLSTM_HOME``, so nothing of the user's is read or written) whose settings are a preset's,
on a real X server (Xvfb, started here) or on ``offscreen``. Once the text, its reference lines
and its copy index are ready (as a user sees them before pressing F5) it triggers Train New
Model, with the Text tab or the Inspect tab (*Live*) showing, and lets the run end by its time
budget. Each app run is bracketed by command-line runs of the same settings and minutes
(``charlstm train TEXT --minutes M ...``); steps, chars/s and best validation loss of every run
are read back from the run store. Inside the app it measures, over the training run: the GUI
thread's CPU time (``time.thread_time()`` in that thread) as a share of one core, the event
loop's lateness (a 10 ms timer, p50/p99/max), the plot's repaints a second, and the CPU time
of every other thread (``/proc/self/task``). Run it under ``flock -x /work/cpu.lock``::

    .venv/bin/python benchmarks/bench_app_vs_cli.py --preset "Quick look"
    .venv/bin/python benchmarks/bench_app_vs_cli.py --preset Balanced --minutes 2 --tab inspect
    .venv/bin/python benchmarks/bench_app_vs_cli.py --platform offscreen

The text is the app's built-in one (written to a temporary file so both read the same
characters) unless one is given. ``--py-spy S`` records S seconds of the app's threads mid-run
(``py-spy record --threads``) and prints where the GUI thread was; ``--screenshot PNG`` takes
the Xvfb screen near the end of the run; ``--nice N`` trains the app at that nice value instead
of ``charlstm_core.engine.parallel.TRAINING_NICE``; ``--threads N`` on N BLAS threads instead of
the count it measures on its first steps (the command line takes BLAS's default: every core).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the lateness probe's period: every tick wakes the GUI thread, which then needs the GIL, so a
# probe at bench_gui_latency.py's 10 ms is itself a load on a training that uses both cores
TICK_MS = 50
LATE_START_S = 3.0  # lateness is counted from this long after the run starts (the first step)
SCREEN = "1600x1000x24"


# ------------------------------------------------------------------------------ the parent
def preset_values(name: str, minutes: float | None) -> dict:
    """The app form's values of preset ``name`` (its budget in minutes, ``minutes`` if given)."""
    from charlstm_core.config import DURATIONS
    from charlstm_core.presets import PRESETS

    preset = PRESETS[name]
    unit, budget = preset.budget
    if minutes is not None:
        unit, budget = "minutes", minutes
    if unit != "minutes":
        raise SystemExit(f"{name} is not a time budget; give --minutes")
    values = {k: v for k, v in preset.settings.items() if k not in DURATIONS}
    return {**values, "duration_unit": "minutes", "duration": budget, "preset": name}


def cli_args(values: dict) -> list[str]:
    """``charlstm train`` options of the form values that are config fields."""
    from charlstm_core.cli.options import options
    from charlstm_core.config import ModelConfig, TrainConfig

    out = ["--minutes", f"{values['duration']:g}"]
    for cls in (ModelConfig, TrainConfig):
        for name, (flag, _s, _default) in options(cls).items():
            if name in values:
                out += [flag, str(values[name])]
    return out


def last_run(home: Path, source: str):
    from charlstm_core.runs import RunStore

    with RunStore.open(home / "runs.sqlite") as store:
        runs = [r for r in store.list_runs() if r.source == source]
    if not runs:
        raise SystemExit(f"no {source} run in the run store of {home}")
    return runs[0]


class Neighbours:
    """CPU time the rest of the machine used while one of our runs ran, as a share of one core:
    all busy time (``/proc/stat``) less ours (this process, its finished children, Xvfb). The
    machine is shared; a figure measured beside someone else's work says so."""

    def __init__(self, xvfb_pid: int | None) -> None:
        self.xvfb_pid = xvfb_pid
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float]:
        tick = os.sysconf("SC_CLK_TCK")
        cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(cpu[i] for i in (0, 1, 2, 5, 6)) / tick  # user nice system irq softirq
        me = os.times()
        ours = me.user + me.system + me.children_user + me.children_system
        x = 0.0
        if self.xvfb_pid:
            f = Path(f"/proc/{self.xvfb_pid}/stat").read_text().rsplit(")", 1)[1].split()
            x = (int(f[11]) + int(f[12])) / tick
        return time.perf_counter(), busy, ours, x

    def figures(self) -> dict:
        (t0, b0, o0, x0), (t1, b1, o1, x1) = self.start, self._read()
        wall = t1 - t0
        return {"others": (b1 - b0 - (o1 - o0) - (x1 - x0)) / wall, "xserver": (x1 - x0) / wall}


def run_cli(text: Path, values: dict, home: Path, xvfb_pid: int | None) -> dict:
    env = {**os.environ, "CHARLSTM_HOME": str(home)}
    cmd = [sys.executable, "-m", "charlstm_core", "train", str(text), *cli_args(values)]
    cmd += ["--out", str(home / "cli.npz"), "-q"]
    load = Neighbours(xvfb_pid)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    census = ThreadCensus(proc.pid)
    while proc.poll() is None:
        census.look()
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"charlstm train exited with {proc.returncode}")
    return {
        **run_figures(last_run(home, "cli")),
        **load.figures(),
        "training": census.busiest(2),
    }


def run_figures(run) -> dict:
    return {
        "steps": run.steps - run.start_step,
        "chars_per_sec": run.chars_per_sec or 0.0,
        "best_val": run.best_val_loss,
        "settings": run.settings,
    }


def start_xvfb() -> tuple[subprocess.Popen, str]:
    for n in range(77, 99):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            proc = subprocess.Popen(
                ["Xvfb", f":{n}", "-screen", "0", SCREEN, "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(100):
                if Path(f"/tmp/.X11-unix/X{n}").exists():
                    return proc, f":{n}"
                time.sleep(0.05)
            proc.kill()
    raise SystemExit("could not start Xvfb")


def run_app(text: Path, values: dict, home: Path, args, xvfb) -> dict:
    display = xvfb[1] if xvfb else None
    profile = home / "profile"
    for sub in ("config", "data"):
        (profile / sub).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CHARLSTM_HOME": str(home),
        "XDG_CONFIG_HOME": str(profile / "config"),
        "XDG_DATA_HOME": str(profile / "data"),
    }
    if display:
        env["DISPLAY"] = display
        env["QT_QPA_PLATFORM"] = "xcb"
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    started = home / "started"
    result = home / "app.json"
    job = {
        "text": str(text),
        "values": values,
        "tab": args.tab,
        "nice": args.nice,
        "threads": args.threads,
        "tick_ms": args.tick_ms,
        "started": str(started),
        "result": str(result),
    }
    (home / "job.json").write_text(json.dumps(job))
    load = Neighbours(xvfb[0].pid if xvfb else None)
    child = subprocess.Popen([sys.executable, __file__, "--child", str(home / "job.json")], env=env)
    budget = float(values["duration"]) * 60
    profiled = shot = False
    while child.poll() is None:
        time.sleep(0.25)
        if not started.exists():
            continue
        t = time.time() - float(started.read_text())
        if args.py_spy and not profiled and t > min(10.0, budget / 4):
            profiled = True
            py_spy(child.pid, args.py_spy, home / "py-spy.txt")
        if args.screenshot and display and not shot and t > budget * 0.9:
            shot = True
            subprocess.run(
                ["import", "-display", display, "-window", "root", args.screenshot], check=False
            )
    if child.returncode != 0:
        raise SystemExit(f"the app exited with {child.returncode}")
    out = json.loads(result.read_text())
    out.update(load.figures())
    out.update(run_figures(last_run(home, "app")))
    if args.py_spy:
        out["profile"] = summarise_profile(home / "py-spy.txt", child.pid, args.profile_out)
    return out


def py_spy(pid: int, seconds: float, out: Path) -> None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [exe, "record", "--pid", str(pid), "--threads", "--rate", "200", "-f", "raw"]
    cmd += ["--duration", f"{seconds:g}", "-o", str(out), "--nonblocking"]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(path: Path, pid: int, keep: str | None, top: int = 16) -> str:
    """The GUI thread's busy samples and the functions most often on its stack."""
    if not path.exists():
        return "no profile (py-spy failed)"
    gui = f"({pid})"  # py-spy heads each stack with "thread (TID): NAME"; the GUI's TID is the pid
    total = 0
    per_thread: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        per_thread[frames[0]] += n
        total += n
        if frames[0].startswith("thread") and gui in frames[0]:
            for f in set(frames[1:]):
                inclusive[f.split(" (")[0]] += n
    busy = sum(n for t, n in per_thread.items() if gui in t)
    if keep:
        shutil.copy(path, keep)
    lines = [f"py-spy: {total} busy samples; GUI thread {busy}"]
    for name, n in inclusive.most_common(top):
        lines.append(f"    {n:6d} {100 * n / max(busy, 1):5.1f}%  {name}")
    for thread, n in per_thread.most_common(6):
        lines.append(f"  thread {thread}: {n}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="Quick look")
    p.add_argument("--minutes", type=float, help="shorten the preset's time budget")
    p.add_argument("--tab", choices=("text", "inspect"), default="text")
    p.add_argument("--platform", choices=("xvfb", "offscreen"), default="xvfb")
    p.add_argument("--text", type=Path, help="training text (default: the built-in text)")
    p.add_argument("--rounds", type=int, default=1, help="app runs, each between two CLI runs")
    p.add_argument("--nice", type=int, help="the app's training nice value (default: the app's)")
    p.add_argument(
        "--threads",
        type=int,
        help="the app trains on this many BLAS threads, as after measuring them (default: it "
        "measures 2 against 1 on its first steps)",
    )
    p.add_argument(
        "--tick-ms", type=float, default=TICK_MS, help="the lateness probe's period (ms)"
    )
    p.add_argument("--no-cli", action="store_true", help="the app alone (profiling)")
    p.add_argument("--py-spy", type=float, default=0, metavar="S")
    p.add_argument("--profile-out", metavar="TXT", help="keep py-spy's raw profile here")
    p.add_argument("--screenshot", metavar="PNG")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child_main(Path(args.child))
    values = preset_values(args.preset, args.minutes)
    with tempfile.TemporaryDirectory(prefix="charlstm-appcli-") as tmp:
        tmp = Path(tmp)
        text = args.text
        if text is None:
            from charlstm_core.files.builtin_text import builtin_corpus

            corpus = builtin_corpus()
            text = tmp / "builtin.txt"
            text.write_text(corpus.vocab.decode(corpus.ids), encoding="utf-8")
        shown = "the built-in text" if args.text is None else str(text)
        note = "" if args.minutes is None else " (the preset's budget shortened)"
        print(
            f"{args.preset}, {values['duration']:g} min{note}; {shown}, "
            f"{text.stat().st_size / 1e6:.1f} MB; app on {args.platform}, {args.tab} tab; "
            f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(f"  settings: {' '.join(cli_args(values))}", flush=True)
        xvfb = start_xvfb() if args.platform == "xvfb" else None
        xvfb_pid = xvfb[0].pid if xvfb else None
        cli: list[dict] = []
        apps: list[dict] = []
        try:
            for i in range(args.rounds + 1):
                if not args.no_cli:
                    home = tmp / f"cli{i}"
                    home.mkdir()
                    cli.append(run_cli(text, values, home, xvfb_pid))
                    print(f"  command line: {describe(cli[-1])}", flush=True)
                if i == args.rounds:
                    break
                home = tmp / f"app{i}"
                home.mkdir()
                apps.append(run_app(text, values, home, args, xvfb))
                print(f"  app:          {describe(apps[-1])}", flush=True)
                print(f"    {app_details(apps[-1])}", flush=True)
                if "profile" in apps[-1]:
                    print(apps[-1]["profile"], flush=True)
        finally:
            if xvfb is not None:
                xvfb[0].terminate()
                xvfb[0].wait()
    if cli and apps:
        differ = settings_differ(cli[0]["settings"], apps[0]["settings"])
        if differ:  # the comparison is of the same training, read back from both run records
            print(f"  WARNING: the app trained other settings than the command line: {differ}")
        for key, what in (("steps", "steps"), ("chars_per_sec", "chars/s")):
            base = sum(c[key] for c in cli) / len(cli)
            ratios = ", ".join(f"{a[key] / base:.2f}" for a in apps)
            print(
                f"app / command line ({what}, against the mean {base:,.0f} of {len(cli)} CLI "
                f"runs): {ratios} x"
            )
        print(f"load now {os.getloadavg()[0]:.2f}")


def settings_differ(a: dict, b: dict) -> str:
    """The config fields two run records disagree on, in words ("" when none but the seed,
    which each run draws)."""
    out = []
    for part in ("model", "train"):
        x, y = a.get(part, {}), b.get(part, {})
        for key in sorted(set(x) | set(y)):
            if key not in ("seed",) and x.get(key) != y.get(key):
                out.append(f"{part}.{key} {x.get(key)!r} vs {y.get(key)!r}")
    return ", ".join(out)


def describe(r: dict) -> str:
    best = "—" if r["best_val"] is None else f"{r['best_val']:.4f}"
    x = f", X server {100 * r['xserver']:.0f}%" if r.get("xserver") else ""
    return (
        f"{r['steps']:,} steps, {r['chars_per_sec']:,.0f} chars/s, best val {best} "
        f"(other processes {max(0.0, 100 * r['others']):.0f}% of a core{x})\n"
        f"    training threads: {r['training']}"
    )


def app_details(r: dict) -> str:
    late = r["late_ms"]
    return (
        f"GUI thread {100 * r['gui_share']:.1f}% of a core; lateness p50 {late[0]:.1f} / "
        f"p99 {late[1]:.1f} / max {late[2]:.1f} ms; plot repaints {r['paints_per_s']:.1f}/s; "
        f"{r['blas']}; the app said: {r['said'] or 'nothing'}"
    )


# ------------------------------------------------------------------------------ the app's side
def read_threads(pid: int | str = "self") -> dict[int, tuple[str, int, float, float, float]]:
    """tid -> (name, nice, seconds on a core, seconds waiting for one, start) of every thread of
    process ``pid``: ``schedstat`` splits a thread's time into running and runnable-but-waiting
    (the rest of its life it was blocked: the GIL, a lock, a join, I/O); ``start`` is seconds
    since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            run, wait, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(tid)] = (name, int(f[16]), int(run) / 1e9, int(wait) / 1e9, int(f[19]) / tick)
    return out


class ThreadCensus:
    """The threads of a process, looked at now and then (``look``) and remembered after they
    end; ``busiest`` says how each spent its life since the first look: on a core, waiting for
    one (the machine or a higher priority took it), blocked (the GIL, a join, I/O)."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.first: dict[int, tuple[float, tuple]] = {}
        self.last: dict[int, tuple[float, tuple]] = {}
        self.t0: float | None = None

    def look(self) -> None:
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        try:
            seen = read_threads(self.pid)
        except OSError:  # the process ended
            return
        if self.t0 is None:
            self.t0 = now
        for tid, info in seen.items():
            self.first.setdefault(tid, (now, info))
            self.last[tid] = (now, info)

    def lives(self, exclude: tuple[int, ...] = ()) -> list[tuple[str, float, float, float]]:
        """(name and nice, seconds alive, on a core, waiting for one) of each thread."""
        out = []
        for tid, (t1, b) in self.last.items():
            if tid in exclude:
                continue
            t0, a = self.first[tid]
            if b[4] > self.t0:  # born after the first look: from its start
                t0, a = b[4], (a[0], a[1], 0.0, 0.0, b[4])
            out.append((f"{b[0]} nice {b[1]}", max(t1 - t0, 1e-9), b[2] - a[2], b[3] - a[3]))
        return out

    def busiest(self, n: int, exclude: tuple[int, ...] = ()) -> str:
        rows = sorted(self.lives(exclude), key=lambda r: -r[2])[:n]
        return "; ".join(
            f"{name}: on a core {100 * run / life:.0f}%, waiting for one {100 * wait / life:.0f}%,"
            f" blocked {100 * max(0.0, 1 - (run + wait) / life):.0f}%"
            for name, life, run, wait in rows
        )


def child_main(job_path: Path) -> None:
    """Runs in the child: the app as ``charlstm-gui TEXT`` starts it, plus the probes."""
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QSettings, QTimer

    from charlstm_gui import app as app_mod

    job = json.loads(job_path.read_text())
    if job["nice"] is not None:
        from charlstm_core.training import threads

        threads.TRAINING_NICE = job["nice"]
    qapp = app_mod.create_app(["charlstm-gui"])
    settings = QSettings()  # the fresh profile, as if the user had chosen the preset
    for key, value in job["values"].items():
        settings.setValue(f"training/{key}", value)
    settings.sync()

    probe: dict = {"late": [], "paints": 0, "t0": None}
    clock = QElapsedTimer()
    clock.start()

    class PaintCounter(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
            if event.type() == QEvent.Type.Paint and probe["t0"] is not None:
                probe["paints"] += 1
            return False

    counter = PaintCounter()
    tick = QTimer()
    tick_ms = job["tick_ms"]
    tick.setInterval(round(tick_ms))
    last = [0]

    def on_tick() -> None:
        now = clock.nsecsElapsed()
        if probe["t0"] is not None and time.perf_counter() - probe["t0"] > LATE_START_S:
            probe["late"].append(max(0.0, (now - last[0]) / 1e6 - tick_ms))
        last[0] = now

    tick.timeout.connect(on_tick)
    # a thread's /proc entry goes when it ends (the training thread, before the run's end is
    # reported): looked at every second, and each remembered
    census = ThreadCensus()
    census_timer = QTimer()
    census_timer.setInterval(1000)
    census_timer.timeout.connect(census.look)

    def window():
        from charlstm_gui.window import MainWindow

        return next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow))

    def ready(w) -> bool:
        return (
            w.ctl.corpus is not None
            and not w.ctl.busy
            and w.meters.finder is not None
            and bool(w.plot.references)
            and w.actions["train"].isEnabled()
            # nothing left running in the background (the settings check's timing of a step):
            # the trainer's first step sizes a --minutes run's finish reserve, and a first step
            # beside that work made a run end after one step
            and not w.ctl.tasks.threads
        )

    def start() -> None:
        w = window()
        if not ready(w):
            QTimer.singleShot(200, start)
            return
        w.ask_unsaved = lambda context: "discard"
        if job.get("threads"):  # as a session of the app that measured this count already
            w.ctl.blas_threads = job["threads"]
        w.plot.widget.viewport().installEventFilter(counter)
        if job["tab"] == "inspect":
            w.tabs.setCurrentWidget(w.inspect)
            w.inspect.live.setChecked(True)
        else:
            w.tabs.setCurrentWidget(w.text_panel)
        blas: list[str] = []
        w.ctl.blas_info.connect(blas.append)

        def on_state(_state) -> None:
            if probe["t0"] is None and w.ctl.training:
                probe["t0"] = time.perf_counter()
                probe["cpu0"] = time.thread_time()
                census.look()
                census_timer.start()
                Path(job["started"]).write_text(str(time.time()))
            elif probe["t0"] is not None and not w.ctl.training and "wall" not in probe:
                finish(w, blas)

        w.ctl.state_changed.connect(on_state)
        tick.start()
        w.actions["train"].trigger()

    def finish(w, blas: list[str]) -> None:
        wall = time.perf_counter() - probe["t0"]
        probe["wall"] = wall
        gui = (time.thread_time() - probe["cpu0"]) / wall
        census_timer.stop()
        census.look()
        late = np.array(probe["late"] or [0.0])
        Path(job["result"]).write_text(
            json.dumps(
                {
                    "gui_share": gui,
                    "training": census.busiest(2, exclude=(os.getpid(),)),
                    "late_ms": [float(np.percentile(late, q)) for q in (50, 99, 100)],
                    "paints_per_s": probe["paints"] / wall,
                    "blas": blas[0] if blas else "BLAS threads: not measured",
                    "said": " / ".join(
                        filter(None, [*(w.last_message or ()), w.statusBar().currentMessage()])
                    ),
                }
            )
        )
        tick.stop()
        QTimer.singleShot(0, w.close)

    QTimer.singleShot(0, start)
    code = app_mod.main(["charlstm-gui", job["text"]])
    sys.exit(code)


if __name__ == "__main__":
    main()
