"""The run's pixel cache: decoded once, reused only while the content key and hash match,
resumed chunk by chunk after a kill, kept by --force, owner-only."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

import numpy as np
import pytest

from miaudit.results import pixels as P
from miaudit.results.store import RunStore, write_json

IDENT = {"training_hash": "h", "data_fingerprint": "f", "models": 4}


@dataclass
class Source:
    """Deterministic pixels [N, 1, 4, 4]; counts the records it decodes; may fail at a row."""

    n: int = 23
    key: str = "a" * 64
    fail_at: int | None = None
    decoded: list[int] = field(default_factory=list)

    @property
    def shape(self):
        return (self.n, 1, 4, 4)

    def decode_rows(self, lo, hi):
        if self.fail_at is not None and lo <= self.fail_at < hi:
            raise KeyboardInterrupt  # a kill midway
        self.decoded.extend(range(lo, hi))
        rows = np.arange(lo, hi, dtype=np.int64)[:, None, None, None]
        return ((rows * 37 + np.arange(16).reshape(1, 1, 4, 4)) % 256).astype(np.uint8)


def _truth(n=23):
    return Source(n=n).decode_rows(0, n)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(P, "CHUNK", 5)


def test_decoded_once_then_read_back(tmp_path):
    source = Source()
    first = P.cached_pixels(tmp_path, source)
    np.testing.assert_array_equal(first, _truth())
    assert source.decoded == list(range(23))
    again = Source()
    np.testing.assert_array_equal(P.cached_pixels(tmp_path, again), _truth())
    assert again.decoded == []  # the cache, not a second decode
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert files == [f"pixels-{'a' * 16}.json", f"pixels-{'a' * 16}.npy"]
    for name in files:
        assert stat.S_IMODE((tmp_path / "cache" / name).stat().st_mode) == 0o600


def test_a_killed_decode_resumes_at_its_first_unwritten_chunk(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        P.cached_pixels(tmp_path, Source(fail_at=12))  # chunks 0-4, 5-9 written
    resumed = Source()
    np.testing.assert_array_equal(P.cached_pixels(tmp_path, resumed), _truth())
    assert resumed.decoded == list(range(10, 23))


def test_a_changed_cache_is_decoded_again(tmp_path):
    P.cached_pixels(tmp_path, Source())
    array = tmp_path / "cache" / f"pixels-{'a' * 16}.npy"
    data = bytearray(array.read_bytes())
    data[-1] ^= 0xFF
    array.write_bytes(bytes(data))
    again = Source()
    np.testing.assert_array_equal(P.cached_pixels(tmp_path, again), _truth())
    assert again.decoded == list(range(23))


def test_another_key_replaces_the_old_arrays(tmp_path):
    P.cached_pixels(tmp_path, Source())
    other = Source(n=7, key="b" * 64)
    np.testing.assert_array_equal(P.cached_pixels(tmp_path, other), _truth(7))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"pixels-{'b' * 16}.json", f"pixels-{'b' * 16}.npy"]


def test_force_keeps_the_cache(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, identity=IDENT) as store:
        P.cached_pixels(store.path, Source())
        write_json(run / "summary.json", {})
    with RunStore.open(run, identity={**IDENT, "models": 8}, force=True) as store:
        assert not (run / "summary.json").exists()  # the old run's results went
        again = Source()
        np.testing.assert_array_equal(P.cached_pixels(store.path, again), _truth())
    assert again.decoded == []


def test_a_users_cache_folder_is_not_written(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, identity=IDENT):
        pass
    # a run made before the cache existed, whose user put their own cache/ in it
    from miaudit.results.ownership import Manifest

    manifest = Manifest.load(run)
    manifest.dirs.remove("cache")
    manifest.save()
    (run / "cache").mkdir()
    (run / "cache" / "mine.txt").write_text("keep")
    with RunStore.open(run, identity=IDENT) as store, pytest.raises(Exception, match="cache"):
        P.cached_pixels(store.path, Source())
    assert (run / "cache" / "mine.txt").read_text() == "keep"
