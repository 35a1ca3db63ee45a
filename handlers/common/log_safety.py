"""Log lines a client cannot forge. TorchServe reads a worker's output line by line and takes any
line that starts with `[METRICS]` for a metric, so a request field holding a newline and
`[METRICS]...` that reached a log message would write its own metric. The filter escapes
control characters (and the Unicode line separators Java's Scanner also splits on) in every
message, and indents traceback lines so none starts a line of its own."""

import logging
import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}"


def escape_control(text: str) -> str:
    """One line: every control character as a visible escape (a newline becomes `\\x0a`)."""
    return _CONTROL.sub(_escape, text)


class ControlCharacterFilter(logging.Filter):
    """A handler filter: each record becomes one safe line, plus an indented traceback."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "control_escaped", False):  # another handler's filter did it
            return True
        record.msg, record.args = escape_control(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _indented(record.exc_text)
        if record.stack_info:
            record.stack_info = _indented(record.stack_info)
        record.control_escaped = True
        return True


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in _CONTROL_BUT_NEWLINE.sub(_escape, text).split("\n"))


def install(logger: logging.Logger = None) -> None:
    """Add the filter to every handler of `logger` (the root logger by default), once: records
    of child loggers reach those handlers without passing logger-level filters."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, ControlCharacterFilter) for f in handler.filters):
            handler.addFilter(ControlCharacterFilter())
