"""Kowalski broker component."""
