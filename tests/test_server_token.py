"""The generated operator token goes to an owner-only file, never to the console."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server import Settings, announce_token


@pytest.mark.fast
def test_generated_token_is_written_owner_only_and_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/sapha.db")
    stale = tmp_path / "data" / "operator-token"
    stale.parent.mkdir()
    stale.write_text("old-token\n")
    stale.chmod(0o644)  # a file left by an older run, readable by all: it must be tightened, not trusted

    path = announce_token("s3cret-token-value", settings)

    assert path == stale
    assert path.read_text() == "s3cret-token-value\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = capsys.readouterr()
    assert "s3cret-token-value" not in printed.out + printed.err
    assert str(path) in printed.err
