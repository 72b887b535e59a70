"""Kowalski hub component."""
