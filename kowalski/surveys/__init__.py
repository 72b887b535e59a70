"""Survey definitions: ``get_survey(name, config)`` -> a :class:`~kowalski.surveys.base.Survey`.

Every fact about a survey is in its definition (one module here, or one module anywhere named
by config) plus its ``surveys.<name>`` block in config; the broker, the filters' input, the API's
data rights, cutouts and SkyPortal delivery ask it. Adding a survey = a ``Survey`` subclass
overriding what differs + ``surveys.<name>`` in config. A survey defined outside this package is
named by ``surveys.<name>.definition: "package.module:Class"``.
"""

from __future__ import annotations

import importlib
from typing import Mapping

from kowalski.surveys.base import CUTOUT_KINDS, SkyPortalMapping, Survey
from kowalski.surveys.lsst import LSST
from kowalski.surveys.pgir import PGIR
from kowalski.surveys.turbo import TURBO
from kowalski.surveys.wntr import WNTR
from kowalski.surveys.ztf import ZTF

SURVEYS: dict[str, type[Survey]] = {cls.name: cls for cls in (ZTF, PGIR, WNTR, TURBO, LSST)}
ALIASES = {"winter": "wntr"}


def survey_class(name: str, config: Mapping) -> type[Survey]:
    """The definition of survey ``name``: config's ``definition`` if it names one, else the built-in."""
    settings = (config.get("surveys") or {}).get(name) or {}
    path = settings.get("definition")
    if not path:
        try:
            return SURVEYS[name]
        except KeyError:
            known = sorted({*SURVEYS, *(config.get("surveys") or {})})
            raise KeyError(f"unknown survey {name!r}; known: {', '.join(known)}") from None
    module, _, attr = str(path).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr or "")
    except (ImportError, AttributeError) as exc:
        raise KeyError(f"surveys.{name}.definition {path!r} cannot be loaded: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Survey)) or cls.name != name:
        raise KeyError(f"surveys.{name}.definition {path!r} is not a Survey subclass named {name!r}")
    return cls


def get_survey(name: str, config: Mapping | None = None) -> Survey:
    """The survey called ``name`` (case-insensitive), configured from ``config`` (default: the process config)."""
    if config is None:
        from kowalski.config import get_config

        config = get_config()
    key = name.lower()
    key = ALIASES.get(key, key)
    return survey_class(key, config)(config)


__all__ = ["CUTOUT_KINDS", "SkyPortalMapping", "Survey", "SURVEYS", "get_survey", "survey_class"]
