"""Survey registry: ``get_survey(name)`` -> a :class:`~broker.surveys.base.Survey`.

Adding a survey = one module here (a ``Survey`` subclass overriding what differs) + its
``surveys.<name>`` block in config.
"""

from __future__ import annotations

from typing import Mapping

from broker.surveys.base import Survey
from broker.surveys.lsst import LSST
from broker.surveys.pgir import PGIR
from broker.surveys.turbo import TURBO
from broker.surveys.wntr import WNTR
from broker.surveys.ztf import ZTF

SURVEYS: dict[str, type[Survey]] = {cls.name: cls for cls in (ZTF, PGIR, WNTR, TURBO, LSST)}
ALIASES = {"winter": "wntr"}


def get_survey(name: str, config: Mapping | None = None) -> Survey:
    """The survey called ``name`` (case-insensitive), configured from ``config`` (default: the process config)."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        cls = SURVEYS[key]
    except KeyError:
        raise KeyError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}") from None
    if config is None:
        from kowalski.config import get_config

        config = get_config()
    return cls(config)


__all__ = ["Survey", "SURVEYS", "get_survey"]
