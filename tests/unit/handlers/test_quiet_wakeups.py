"""The wake-up handlers run for every watch event: their successes stay out of the log."""

from __future__ import annotations

import logging

from rerank_operator.handlers.children import QuietWakeups


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)


def test_wake_handler_successes_are_dropped_and_everything_else_kept() -> None:
    quiet = QuietWakeups()
    assert not quiet.filter(record("Handler 'pods-changed' succeeded."))
    assert not quiet.filter(record("Handler 'pipeline-changed' succeeded."))
    assert quiet.filter(record("Handler 'cleanup' succeeded."))  # deletion is worth a line
    assert quiet.filter(record("Handler 'pods-changed' failed with an exception. Will ignore."))
