"""operations.server.TorchServe loads several versions of one model at start: one `--models`
entry per archive, the first (TorchServe's default version) first."""

from operations.server import TorchServe


def test_each_version_is_one_models_entry_the_default_first(tmp_path):
    server = TorchServe(tmp_path, tmp_path, {"fast_style": "fast_style-1.0.mar", "animals": ["a-1.0.mar", "a-1.1.mar"]})
    command = server.command()
    models = command[command.index("--models") + 1]
    assert models == "fast_style=fast_style-1.0.mar,animals=a-1.0.mar,animals=a-1.1.mar"
