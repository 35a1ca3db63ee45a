"""Log lines and metric labels a client cannot forge (TorchServe re-reads both line by line)."""

import io
import logging

import pytest

from handlers.common import log_safety
from handlers.common.metrics import MAX_LABEL_CHARS, label

FORGED = "x\n[METRICS]Forged.Count:1|#Level:Host|#hostname:h,1"


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))  # TorchServe's worker format
    root = logging.getLogger()
    root.addHandler(handler)
    logger = logging.getLogger("imagelab.test.log_safety")
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    log_safety.install(root)
    yield logger, stream
    root.removeHandler(handler)
    for other in root.handlers:  # pytest's own capture handlers got the filter too
        for installed in [f for f in other.filters if isinstance(f, log_safety.ControlCharacterFilter)]:
            other.removeFilter(installed)
    logger.setLevel(previous_level)


def lines_of(stream) -> list:
    return stream.getvalue().splitlines()  # splits on \u2028 and \x85 too, as Java's Scanner does


@pytest.mark.parametrize("separator", ["\n", "\r", "\u2028", "\x85", "\x0b"])
def test_no_logged_value_starts_a_line_of_its_own(captured, separator):
    logger, stream = captured
    forged = FORGED.replace("\n", separator)
    logger.info("unknown field %s", forged)
    try:
        raise ValueError(forged)
    except ValueError:
        logger.exception("decoding failed")
    lines = lines_of(stream)
    assert lines[0].startswith("unknown field x")
    assert not [line for line in lines if line.startswith("[METRICS]")], lines
    assert any("ValueError" in line for line in lines)  # the trace is still there, indented


def test_install_is_idempotent(captured):
    logger, stream = captured
    log_safety.install()
    logger.info("once")
    assert lines_of(stream) == ["once"]


@pytest.mark.parametrize(
    "value, expected",
    [("image", "image"), ("InvalidInput", "InvalidInput"), (FORGED, None), ("k" * 100_000, None), ("", "unknown")],
)
def test_metric_labels_cannot_break_the_metric_line(value, expected):
    safe = label(value)
    if expected is not None:
        assert safe == expected
    assert len(safe) <= MAX_LABEL_CHARS
    assert not set(safe) & set("\n\r|#,:\u2028 ")
