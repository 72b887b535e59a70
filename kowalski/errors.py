"""Errors shared across commands (kept apart from kowalski.cli, which also runs as __main__)."""


class CLIError(Exception):
    """A user error: `kowalski` prints it as one line and exits with code 2."""


class AlertError(ValueError):
    """One message cannot become alert documents; ``reason`` says why, precisely.

    The consumer routes such messages to a dead-letter topic with the reason; it never stops
    the batch: the other alerts of the batch are processed and stored.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
