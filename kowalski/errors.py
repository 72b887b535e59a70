"""Errors shared across commands (kept apart from kowalski.cli, which also runs as __main__)."""


class CLIError(Exception):
    """A user error: `kowalski` prints it as one line and exits with code 2."""
