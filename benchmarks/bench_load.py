"""Benchmark of load_corpus: read, decode, build the vocabulary and encode a 100 MB text.

Targets (issue 2): <= 5 s wall and <= 1.5 GB peak memory. Each file is loaded in a fresh child
process so that its peak RSS (ru_maxrss) counts the load alone, not generating the text.

    .venv/bin/python benchmarks/bench_load.py            # generated mixed UTF-8 and pure ASCII
    .venv/bin/python benchmarks/bench_load.py FILE ...   # your own files
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_S = 5.0
TARGET_BYTES = 1.5e9
SIZE = 100 * 2**20  # 100 MiB


def _alphabet(mixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(code points, probabilities): English-like ASCII, plus for ``mixed`` accented Latin,
    Cyrillic, ~3,000 CJK characters and a few emoji (which make Python hold the text as UCS-4,
    the worst case for memory), about 12% of the characters non-ASCII."""
    ascii_cps = np.array([ord(c) for c in " \neeettaaoinshrdlucmfwypvbgkqjxzETAOINS.,;:'!?-0123"])
    parts = [(ascii_cps, 0.88 if mixed else 1.0)]
    if mixed:
        parts += [
            (np.array([ord(c) for c in "éèàçüöäßñøåœ"]), 0.04),
            (np.arange(0x0410, 0x0450), 0.03),  # Cyrillic
            (np.arange(0x4E00, 0x4E00 + 3000), 0.049),  # CJK
            (np.array([0x1F600, 0x1F642, 0x1F680]), 0.001),  # emoji
        ]
    cps = np.concatenate([p[0] for p in parts])
    prob = np.concatenate([np.full(p[0].size, p[1] / p[0].size) for p in parts])
    return cps.astype(np.uint32), prob / prob.sum()


def generate(path: str, mixed: bool, size: int = SIZE, seed: int = 0) -> None:
    """Write at least ``size`` bytes of random UTF-8 text to ``path``, in chunks."""
    rng = np.random.default_rng(seed)
    cps, prob = _alphabet(mixed)
    written = 0
    with open(path, "wb") as f:
        while written < size:
            chunk = cps[rng.choice(cps.size, size=4_000_000, p=prob)]
            raw = chunk.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
            raw = raw[: size - written]
            raw = raw.decode("utf-8", "ignore").encode("utf-8")  # cut on a character boundary
            f.write(raw)
            written += len(raw)
            if len(raw) == 0:
                break


def measure(path: str) -> dict:
    """Load ``path`` once in this process; wall seconds and peak RSS of the whole process."""
    from charlstm_core.files.text import load_corpus

    t0 = time.perf_counter()
    corpus = load_corpus(path)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "file": os.path.basename(path),
        "mb": corpus.n_bytes / 1e6,
        "chars": corpus.n_chars,
        "vocab": corpus.vocab.size,
        "dtype": str(corpus.ids.dtype),
        "wall_s": wall,
        "peak_rss_mb": peak_kib * 1024 / 1e6,
    }


def _run_child(path: str) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", path],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"loading {path} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(argv[1])))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        files = list(argv)
        if not files:
            for name, mixed in (("mixed-utf8.txt", True), ("ascii.txt", False)):
                p = os.path.join(tmp, name)
                t0 = time.perf_counter()
                generate(p, mixed)
                print(
                    f"generated {name}: {os.path.getsize(p) / 1e6:.1f} MB "
                    f"in {time.perf_counter() - t0:.1f} s"
                )
                files.append(p)
        print(
            f"{'file':<18}{'MB':>8}{'chars':>13}{'vocab':>7}{'dtype':>8}"
            f"{'wall s':>9}{'peak RSS MB':>13}  targets: <= {TARGET_S:g} s, "
            f"<= {TARGET_BYTES / 1e6:,.0f} MB"
        )
        ok = True
        for p in files:
            r = _run_child(p)
            good = r["wall_s"] <= TARGET_S and r["peak_rss_mb"] * 1e6 <= TARGET_BYTES
            ok &= good
            print(
                f"{r['file']:<18}{r['mb']:>8.1f}{r['chars']:>13,}{r['vocab']:>7}{r['dtype']:>8}"
                f"{r['wall_s']:>9.2f}{r['peak_rss_mb']:>13,.0f}  {'ok' if good else 'MISSED'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
