"""Build CharLSTM Studio's standalone one-folder app with PyInstaller and report its size.

``python packaging/pyinstaller/build.py [--dist DIR] [--work DIR]`` (defaults: ``dist/`` and
``build/pyinstaller/`` in the repository) writes ``DIR/charlstm-studio/charlstm-gui``.
Needs ``pip install pyinstaller`` in the same environment as the app's dependencies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = HERE / "charlstm-studio.spec"
APP_DIR = "charlstm-studio"  # COLLECT name in the spec
EXE_NAME = "charlstm-gui.exe" if sys.platform == "win32" else "charlstm-gui"


def folder_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (what ``du`` counts, give or take blocks)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build(dist: Path, work: Path, quiet: bool = True) -> Path:
    """Run PyInstaller on the spec; return the built executable. Raises ``RuntimeError``."""
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",  # replace an earlier build without asking
        "--clean",  # no stale cache from another environment
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        "--log-level",
        "WARN" if quiet else "INFO",
        str(SPEC),
    ]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")  # hooks import Qt; no display needed
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    exe = dist / APP_DIR / EXE_NAME
    if done.returncode != 0 or not exe.is_file():
        raise RuntimeError(f"PyInstaller failed (exit {done.returncode}); see its output above")
    return exe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller", help="scratch folder"
    )
    parser.add_argument("--verbose", action="store_true", help="PyInstaller's INFO log")
    args = parser.parse_args(argv)
    try:
        import PyInstaller  # noqa: F401  (only to give a clear message when it is missing)
    except ImportError:
        print("PyInstaller is not installed: pip install pyinstaller", file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        exe = build(args.dist.resolve(), args.work.resolve(), quiet=not args.verbose)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    size_mb = folder_size(exe.parent) / 1e6
    print(f"built {exe} in {seconds:.0f} s; the folder {exe.parent} holds {size_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
