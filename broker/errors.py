"""Errors of the per-alert processing kernel."""

from __future__ import annotations


class AlertError(ValueError):
    """One message cannot become alert documents; ``reason`` says why, precisely.

    The consumer routes such messages to a dead-letter topic with the reason; it never stops
    the batch: the other alerts of the batch are processed and stored.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
