"""Reading model files safely: nothing is decompressed before the zip's directory has been
checked (entry names, compression methods, count) and no array before its declared size has
been checked against the shape its metadata implies, so a hostile file (a zip bomb, a pickle,
millions of entries) is refused before it costs memory or time. :func:`load_model` then
validates everything with charlstm_core.files.modelfile.parse.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from ...errors import ModelFileError, ModelFormatVersionError
from ..vocab import N_CODEPOINTS
from .parse import parse
from .schema import (
    K_META,
    K_TRAIN_META,
    K_VERSION,
    K_VOCAB,
    P_HISTORY,
    Invalid,
    ModelFile,
    array_layout,
    bad,
    check_version,
    model_config,
    parse_json,
    train_config,
)

# What a damaged or hostile file can make np.load / zipfile / the .npy reader raise.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    MemoryError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
)


# Limits checked against the zip's directory before anything is decompressed (a hostile file
# must not make the loader allocate more than the model it claims to be; see tests/test_faults).
MAX_ENTRIES = 256  # a 4-layer checkpoint has about 70 entries
MAX_SMALL_ENTRY = {  # bytes an entry read before the shapes are known may declare
    K_VERSION: 1024,
    K_META: 1 << 20,
    K_VOCAB: 4 * N_CODEPOINTS + 4096,
    K_TRAIN_META: 32 << 20,  # RNG states, settings, up to MAX_SAMPLES samples
}
HISTORY_DEFLATE_MAX = 16 << 20  # a deflated history series may inflate to this, no more
NPY_HEADER_MAX = 1 << 16  # a .npy header (magic, length, dict) of ours is 128 bytes
_ARRAY_NAME = r"[A-Za-z0-9_.]{1,64}"
_ENTRY_NAME = re.compile(
    rf"(?:format_version|meta|vocab|params/{_ARRAY_NAME}|train/meta|train/h|train/c"
    rf"|train/adam_m/{_ARRAY_NAME}|train/adam_v/{_ARRAY_NAME}|train/history/[A-Za-z0-9_]{{1,64}})"
)


def _check_end_record(f: Any) -> None:
    """Refuse a directory of more than MAX_ENTRIES entries before zipfile builds one object per
    entry (a small hostile file can declare millions)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython 3
    if end_record is None:
        return
    rec = end_record(f)
    if rec is None:
        raise zipfile.BadZipFile("File is not a zip file")
    count, size = rec[4], rec[5]  # entries in the directory, directory bytes
    if count > MAX_ENTRIES or size > MAX_ENTRIES * 1024:
        raise bad(f"its directory lists {count:,} entries (a model has at most {MAX_ENTRIES})")


def _directory(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by array key; Invalid for names, methods or flags we never write
    (nothing is decompressed here)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise bad(f"it has {len(infos):,} entries (a model has at most {MAX_ENTRIES})")
    entries: dict[str, zipfile.ZipInfo] = {}
    not_arrays = []
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            not_arrays.append(name)
            continue
        key = name[: -len(".npy")]
        if key in entries:
            raise bad(f"it holds the entry {key!r} twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise bad(f"its entry {key!r} uses compression method {info.compress_type}")
        if info.flag_bits & 0x1:
            raise bad(f"its entry {key!r} is encrypted")
        entries[key] = info
    if not_arrays:
        raise bad(f"entries that are not NumPy arrays: {', '.join(map(repr, not_arrays))}")
    return entries


def _read_entry(
    zf: zipfile.ZipFile,
    key: str,
    info: zipfile.ZipInfo,
    expect: tuple[tuple[int, ...], np.dtype] | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """One .npy entry, its header checked before its data is read.

    ``expect`` (shape, dtype): the header must declare exactly these and the entry's declared
    size must be the header plus their bytes. ``max_bytes``: a bound on the data instead.
    The data is read in chunks into one buffer, so memory is the array's size; zipfile stops
    at the declared size and checks the CRC at the end.
    """
    if info.file_size > (max_bytes or 0) + NPY_HEADER_MAX and expect is None:
        raise bad(f"its entry {key!r} declares {info.file_size:,} bytes, more than it can hold")
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, NPY_HEADER_MAX)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, NPY_HEADER_MAX)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as e:
            if "object" in str(e).lower() or "pickle" in str(e).lower():
                raise _Pickled() from None
            raise bad(f"its entry {key!r} is not a valid NumPy array ({e})") from None
        if dtype.hasobject:
            raise _Pickled()
        if expect is not None:
            if dtype != expect[1]:
                raise bad(f"{key!r} has dtype {dtype}, expected {expect[1]}")
            if tuple(shape) != tuple(expect[0]):
                raise bad(f"{key!r} has shape {tuple(shape)}, expected {tuple(expect[0])}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise bad(f"its entry {key!r} holds {nbytes:,} bytes, more than it can hold")
        if f.tell() + nbytes != info.file_size:
            raise bad(
                f"its entry {key!r} declares {info.file_size:,} bytes where its array needs "
                f"{f.tell() + nbytes:,}"
            )
        buf = bytearray(nbytes)
        view = memoryview(buf)
        pos = 0
        while pos < nbytes:
            chunk = f.read(min(1 << 24, nbytes - pos))
            if not chunk:
                raise EOFError(f"the data of {key!r} ends early")
            view[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
        f.read(1)  # at the end: zipfile verifies the CRC
    arr = np.frombuffer(buf, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


class _Pickled(Exception):
    """An entry holds Python objects (a pickle)."""


def _expected_shapes(
    small: dict[str, np.ndarray], entries: dict[str, zipfile.ZipInfo]
) -> dict[str, tuple[tuple[int, ...], np.dtype] | int]:
    """For every other entry, its (shape, dtype) from the metadata, or for a history series the
    most bytes it may hold; Invalid for unknown entries."""
    cfg = model_config(small[K_META])
    out: dict[str, tuple[tuple[int, ...], np.dtype] | int] = {}
    if K_TRAIN_META not in small:
        out.update(array_layout(cfg, None))
    else:
        tmeta = parse_json(small[K_TRAIN_META], K_TRAIN_META)
        out.update(array_layout(cfg, train_config(tmeta).batch_size))
        steps = [tmeta.get(k) for k in ("step", "total_steps")]
        longest = max([v for v in steps if isinstance(v, int) and v > 0] + [1])
        for key in entries:
            if key.startswith(P_HISTORY):  # about one value per step (rollbacks: a margin)
                out[key] = 8 * (4 * longest + 65536)
    unknown = sorted(set(entries) - set(out) - set(small))
    if unknown:
        raise bad(f"it has unknown entries: {', '.join(map(repr, unknown))}")
    return out


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """Every entry of the .npz at ``path``; ModelFileError for unreadable or unsafe files.

    Nothing is decompressed before the zip's directory has been checked (entry names,
    compression methods, count), and no array before its declared size has been checked: the
    small entries first against fixed bounds, then every other one against the exact shape
    its metadata implies. A zip bomb is refused before it costs memory or time.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"There is no model file {path}. Check the name and folder.") from None
    except OSError as e:
        raise ModelFileError(f"Cannot read {path}: {e.strerror or e}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path} is a folder, not a model file. Choose a .npz model file.")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(
            f"{path} is not a regular file (a device, FIFO or socket), so it cannot be a model "
            "file. Choose a .npz model file."
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise ModelFileError(f"Cannot read {path}: {e.strerror or e}.") from None
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError(
            f"{path} is a single NumPy array, not a CharLSTM Studio model file (.npz)."
        )
    if not magic.startswith(b"PK"):
        what = "empty" if not magic else "not an .npz archive"
        raise ModelFileError(f"{path} is not a CharLSTM Studio model file ({what}).")
    try:
        with open(path, "rb") as f:
            _check_end_record(f)
            f.seek(0)
        with open(path, "rb") as f, zipfile.ZipFile(f) as zf:
            entries = _directory(zf)
            small = {
                key: _read_entry(zf, key, entries[key], max_bytes=limit)
                for key, limit in MAX_SMALL_ENTRY.items()
                if key in entries
            }
            check_version(small)  # a newer layout is named as such before its entries are
            for key in (K_META, K_VOCAB):
                if key not in small:
                    raise bad(f"it has no {key!r} entry")
            bad_names = [k for k in entries if not _ENTRY_NAME.fullmatch(k)]
            if bad_names:
                raise bad(f"it has unknown entries: {', '.join(map(repr, sorted(bad_names)))}")
            expected = _expected_shapes(small, entries)
            arrays = dict(small)
            for key, info in entries.items():
                if key in arrays:
                    continue
                want = expected[key]
                if isinstance(want, int):
                    # a series whose length only the metadata's step count bounds: a hostile
                    # file could claim any count, so a big one must not be a deflated bomb
                    big = info.file_size > HISTORY_DEFLATE_MAX
                    if big and info.compress_type != zipfile.ZIP_STORED:
                        raise bad(
                            f"its entry {key!r} inflates to {info.file_size:,} bytes; model files "
                            "store large series uncompressed"
                        )
                    arrays[key] = _read_entry(zf, key, info, max_bytes=want)
                else:
                    arrays[key] = _read_entry(zf, key, info, expect=want)
    except Invalid as e:
        raise ModelFileError(f"{path} is not a valid CharLSTM Studio model file: {e}.") from None
    except ModelFormatVersionError as e:
        raise ModelFormatVersionError(f"{path}: {e}") from None
    except _Pickled:
        raise ModelFileError(
            f"{path} contains pickled Python objects; model files hold only plain arrays, "
            "and pickles are never loaded because they can run code."
        ) from None
    except PermissionError:
        raise ModelFileError(f"Cannot read {path}: permission denied.") from None
    except _READ_ERRORS as e:
        msg = str(e)
        if isinstance(e, zipfile.BadZipFile) and "not a zip file" in msg.lower():
            raise ModelFileError(
                f"{path} is truncated or damaged: it starts like an .npz archive but its table "
                "of contents is missing. Use an intact copy of the model file."
            ) from None
        raise ModelFileError(
            f"{path} is damaged (truncated or corrupted) and cannot be read: "
            f"{type(e).__name__}: {msg or 'no details'}."
        ) from None
    return arrays


def load_model(path: str | os.PathLike) -> ModelFile:
    """Read and validate a model file written by ``save_model``; never unpickles.

    Raises ModelFileError naming the problem (missing, folder, not an .npz, truncated,
    corrupted, pickled objects, unknown or missing entries, wrong shape or dtype, non-finite
    weights) and ModelFormatVersionError for a file from a newer CharLSTM Studio.
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    try:
        return parse(arrays)
    except Invalid as e:
        raise ModelFileError(f"{path} is not a valid CharLSTM Studio model file: {e}.") from None
    except ModelFormatVersionError as e:
        raise ModelFormatVersionError(f"{path}: {e}") from None
