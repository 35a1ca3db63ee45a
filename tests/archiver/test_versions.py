import zipfile

import pytest

from archiver.versions import (
    Version,
    archive_identity,
    archive_path,
    latest_version,
    list_versions,
    next_version,
    parse_version,
    verify_archive,
)


def touch(store, *names):
    for name in names:
        (store / name).write_bytes(b"")


@pytest.mark.parametrize("text,expected", [("1.0", Version(1, 0)), ("10.2", Version(10, 2))])
def test_parse_version(text, expected):
    assert parse_version(text) == expected
    assert str(parse_version(text)) == text


@pytest.mark.parametrize("text", ["1", "1.0.0", "v1.0", "", "1.x", "-1.0"])
def test_parse_version_rejects_other_forms_naming_them(text):
    with pytest.raises(ValueError, match="major.minor"):
        parse_version(text)


def test_versions_sort_as_numbers_and_only_of_that_model(tmp_path):
    touch(
        tmp_path,
        "fast_style-9.0.mar",
        "fast_style-10.0.mar",
        "fast_style-1.5.mar",
        "fast_style_x-99.0.mar",
        "neural_style-3.0.mar",
        "fast_style-1.2.3.mar",
        "fast_style-2.0.mar.part",
    )
    assert list_versions(tmp_path, "fast_style") == ["1.5", "9.0", "10.0"]
    assert latest_version(tmp_path, "fast_style") == "10.0"


def test_next_version(tmp_path):
    assert next_version(tmp_path, "fast_style") == "1.0"
    touch(tmp_path, "fast_style-1.0.mar")
    assert next_version(tmp_path, "fast_style") == "2.0"
    touch(tmp_path, "fast_style-9.3.mar")
    assert next_version(tmp_path, "fast_style") == "10.0"
    assert next_version(tmp_path, "neural_style") == "1.0"


def test_archive_path_normalises_and_validates(tmp_path):
    assert archive_path(tmp_path, "txt2img", "2.0") == tmp_path / "txt2img-2.0.mar"
    with pytest.raises(ValueError):
        archive_path(tmp_path, "txt2img", "latest")


def test_archive_identity_comes_from_the_mar_manifest(tmp_path, make_mar):
    mar = make_mar(tmp_path / "renamed.mar", "fast_style", "3.0")
    assert archive_identity(mar) == ("fast_style", "3.0")


def test_verify_archive_passes_intact_and_names_changed_or_missing_weights(tmp_path, make_mar):
    intact = make_mar(tmp_path / "a.mar", "m", "1.0", {"weights/a.pth": b"aaa", "weights/b.pth": b"bbb"})
    assert verify_archive(intact) == []
    changed = tmp_path / "b.mar"
    with zipfile.ZipFile(intact) as source, zipfile.ZipFile(changed, "w") as out:
        for item in source.infolist():
            if item.filename == "weights/a.pth":
                continue
            data = source.read(item)
            out.writestr(item, b"BBB" if item.filename == "weights/b.pth" else data)
    assert verify_archive(changed) == ["weights/a.pth", "weights/b.pth"]


def test_verify_archive_without_manifest_says_so(tmp_path):
    bare = tmp_path / "bare.mar"
    with zipfile.ZipFile(bare, "w") as bundle:
        bundle.writestr("MAR-INF/MANIFEST.json", "{}")
    with pytest.raises(ValueError, match="no manifest.json"):
        verify_archive(bare)
