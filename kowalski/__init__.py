"""Kowalski: an API-first, multi-survey alert broker and archive for time-domain astronomy."""

__version__ = "0.1.0"
