"""Kowalski api component."""
