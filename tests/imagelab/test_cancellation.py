"""Cancel markers: names validated (never a path outside the folder), expiry, the bound on how
many may wait, and the job ids' shape."""

import os

import pytest

from imagelab.cancellation import (
    CANCEL_DIR_ENV,
    CancelMarkers,
    InvalidJobId,
    JobCancelled,
    TooManyMarkers,
    cancel_dir,
    check_job_id,
    new_job_id,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_marker_cancels_its_job_only_and_clear_removes_it(tmp_path):
    markers = CancelMarkers(tmp_path / "cancel")
    job, other = new_job_id(), new_job_id()
    assert not markers.is_cancelled(job)  # no folder yet: nothing is cancelled
    markers.request(job)
    assert markers.is_cancelled(job) and not markers.is_cancelled(other)
    with pytest.raises(JobCancelled) as stopped:
        markers.check(job, step=3)
    assert stopped.value.job_id == job and stopped.value.step == 3 and "after step 3" in str(stopped.value)
    markers.check(other)  # does not raise
    markers.clear(job)
    assert not markers.is_cancelled(job) and os.listdir(tmp_path / "cancel") == []
    markers.clear(job)  # twice is fine: the job may end after its marker expired


def test_the_folder_and_markers_are_private(tmp_path):
    markers = CancelMarkers(tmp_path / "cancel")
    markers.request("job-0001")
    assert (tmp_path / "cancel").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "cancel" / "job-0001").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "../../etc/passwd",
        "a/b/c/d/e/f",
        "job id with spaces",
        "x" * 65,
        "",
        "job.0001",
        "..%2f..%2fx",
        None,
        7,
    ],
)
def test_names_that_are_no_job_id_are_refused_everywhere(tmp_path, bad):
    markers = CancelMarkers(tmp_path / "cancel")
    for call in (markers.request, markers.is_cancelled, markers.clear, markers.check):
        with pytest.raises(InvalidJobId, match="8 to 64"):
            call(bad)
    assert not (tmp_path / "cancel").exists() or os.listdir(tmp_path / "cancel") == []
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))


def test_job_ids_are_long_random_and_valid():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 24 and check_job_id(i) == i for i in ids)


def test_markers_expire_and_the_next_request_sweeps_them(tmp_path):
    clock = Clock()
    markers = CancelMarkers(tmp_path, ttl_s=60, clock=clock)
    markers.request("old-job-1")
    clock.now += 59
    assert markers.is_cancelled("old-job-1")
    clock.now += 1
    assert not markers.is_cancelled("old-job-1")  # expired: counts for nothing
    assert (tmp_path / "old-job-1").exists()
    markers.request("new-job-1")
    assert sorted(os.listdir(tmp_path)) == ["new-job-1"]  # swept
    clock.now += 30
    markers.request("new-job-1")  # renewed: its 60 s start again
    clock.now += 45
    assert markers.is_cancelled("new-job-1")


def test_a_full_folder_refuses_new_markers_until_some_expire(tmp_path):
    clock = Clock()
    markers = CancelMarkers(tmp_path, ttl_s=60, max_markers=3, clock=clock)
    for n in range(3):
        markers.request(f"job-000{n}")
    with pytest.raises(TooManyMarkers, match="3 cancel requests"):
        markers.request("job-0003")
    markers.request("job-0001")  # renewing one already there is no new marker
    clock.now += 61
    markers.request("job-0003")
    assert sorted(os.listdir(tmp_path)) == ["job-0003"]


def test_the_sweep_removes_what_is_not_a_marker_and_never_follows_links(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    folder = tmp_path / "cancel"
    folder.mkdir()
    (folder / "job-link-1").symlink_to(outside)
    (folder / "not a marker").write_text("")
    markers = CancelMarkers(folder)
    assert markers.sweep() == 0
    assert sorted(os.listdir(folder)) == [] and outside.read_text() == "keep me"
    (folder / "job-link-2").symlink_to(outside)
    markers.request("job-link-2")  # the sweep first removes the link; the marker is a new file
    assert not (folder / "job-link-2").is_symlink() and outside.read_text() == "keep me"
    assert markers.is_cancelled("job-link-2")


def test_the_folder_is_the_environments_or_the_workdirs(tmp_path, monkeypatch):
    monkeypatch.delenv(CANCEL_DIR_ENV, raising=False)
    assert cancel_dir(None) is None
    assert cancel_dir(tmp_path) == tmp_path / "cancel"
    monkeypatch.setenv(CANCEL_DIR_ENV, str(tmp_path / "elsewhere"))
    assert cancel_dir(tmp_path) == tmp_path / "elsewhere"
