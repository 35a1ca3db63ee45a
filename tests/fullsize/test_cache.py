"""The full-size cache's bookkeeping (weightstore/full_size.py) with a stand-in build: reused
once complete, built at most once under the lock, nothing half-made left by a failed build.
These need no full-size weights and run in seconds."""

import json
import threading

import pytest

from weightstore import full_size


@pytest.fixture
def builds(monkeypatch):
    """Replace the 7 GB build by one writing a marker file; returns the list of built roots."""
    made = []

    def fake_build(weights, seed):
        made.append(weights.root)
        (weights.root / "sd15").mkdir()
        (weights.root / "build.json").write_text(json.dumps({"recipe": "test", "seed": seed, "build_s": 0, "bytes": 0}))

    monkeypatch.setattr(full_size, "_build", fake_build)
    return made


def test_the_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(full_size.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert full_size.cache_root() == tmp_path / "elsewhere"


def test_a_complete_folder_is_reused_not_rebuilt(tmp_path, builds):
    first = full_size.ensure_full_size_weights(tmp_path)
    second = full_size.ensure_full_size_weights(tmp_path)
    assert first == second and len(builds) == 1
    assert first.root == tmp_path / f"{full_size.RECIPE}-seed0"
    assert builds[0] != first.root  # built beside its place, then renamed into it


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing_build(weights, seed):
        (weights.root / "sd15").mkdir()
        raise OSError("disk full")

    monkeypatch.setattr(full_size, "_build", failing_build)
    with pytest.raises(OSError, match="disk full"):
        full_size.ensure_full_size_weights(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{full_size.RECIPE}-seed0.lock"]


def test_a_killed_builds_scratch_and_a_folder_without_build_json_are_replaced(tmp_path, builds):
    stale = tmp_path / f".{full_size.RECIPE}-seed0-build-killed"
    stale.mkdir()
    incomplete = tmp_path / f"{full_size.RECIPE}-seed0"
    (incomplete / "sd15").mkdir(parents=True)
    weights = full_size.ensure_full_size_weights(tmp_path)
    assert not stale.exists() and len(builds) == 1
    assert (weights.root / "build.json").is_file()


def test_a_second_process_waits_on_the_lock_and_does_not_build_again(tmp_path, builds):
    target = full_size.FullSizeWeights(tmp_path / f"{full_size.RECIPE}-seed0")
    results = []
    with full_size._exclusive(tmp_path / f".{target.root.name}.lock"):  # another process building
        waiter = threading.Thread(target=lambda: results.append(full_size.ensure_full_size_weights(tmp_path)))
        waiter.start()
        (target.root / "sd15").mkdir(parents=True)  # ... which finishes while the waiter waits
        (target.root / "build.json").write_text("{}")
    waiter.join()
    assert results == [target] and builds == []


def test_link_sd15_replaces_a_link_but_never_a_real_folder(tmp_path, builds):
    weights = full_size.ensure_full_size_weights(tmp_path / "cache")
    root = tmp_path / "weights"
    link = full_size.link_sd15(weights, root)
    assert link.resolve() == weights.sd15.resolve()
    assert full_size.link_sd15(weights, root) == link  # again: replaces its own link
    link.unlink()
    (root / "sd15").mkdir()
    with pytest.raises(FileExistsError, match="not a symlink"):
        full_size.link_sd15(weights, root)
