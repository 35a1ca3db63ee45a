"""Each room's command line: `python -m weightstore`, `python -m archiver`, `python -m operations`."""

import pytest

import archiver.__main__ as archiver_cli
import operations.__main__ as operations_cli
import weightstore.__main__ as weightstore_cli


def test_weights_status_reports_without_writing_anything(tmp_path, capsys):
    weightstore_cli.main(["--weights", str(tmp_path), "status"])
    out = capsys.readouterr().out
    assert "base model   sd15" in out and "missing" in out
    assert "fast_style   candy" in out and "txt2img      lcm" in out
    assert list(tmp_path.iterdir()) == []  # nothing synthesised, no checksum file


def test_archive_status_names_each_archives_base_model(tmp_path, make_mar, capsys):
    base = tmp_path / "sd15"
    base.mkdir()
    (base / "model_index.json").write_text("{}")
    files = [{"path": "model_index.json", "sha256": "0" * 64, "bytes": 2}]  # the bytes it was built on
    record = {"path": str(base), "embedded": False, "identity": "ab" * 32, "files": files}
    make_mar(tmp_path / "txt2img-2.0.mar", "txt2img", "2.0", manifest_overrides={"base_model": record})
    make_mar(tmp_path / "fast_style-1.0.mar", "fast_style", "1.0")
    archiver_cli.main(["status", "--store", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fast_style-1.0.mar") and "no base model" in lines[0] and "weights/candy" in lines[0]
    assert (
        lines[1].startswith("txt2img-2.0.mar")
        and f"base abababababab at {base} (CHANGED" in lines[1]
        and "1 file(s) differ" in lines[1]
    )


def test_operations_owns_serving_and_the_lifecycle(tmp_path, capsys):
    with pytest.raises(SystemExit):
        operations_cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "deploy", "rollback", "versions", "prune", "export-kserve"):
        assert command in out
    operations_cli.main(["versions", "fast_style", "--store", str(tmp_path), "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "fast_style in" in out and "none" in out and "server: not reachable" in out
    with pytest.raises(SystemExit):
        archiver_cli.main(["serve"])  # serving left the archives room
