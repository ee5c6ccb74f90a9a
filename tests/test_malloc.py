"""common.malloc: the arena cap is applied on glibc unless the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import platform

import pytest

from common.malloc import cap_arenas

pytestmark = pytest.mark.fast


def test_the_environment_wins():
    assert cap_arenas(env={"MALLOC_ARENA_MAX": "4"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_applied_on_glibc_when_unset():
    assert cap_arenas(env={}) is True
