"""Kowalski dashboards component."""
