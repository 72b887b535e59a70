"""Classification labels (``/api/classifications``): what a human label's name and value may be.

The API enforces the rule; the dashboards' form asks the same rule first, to answer at once
without a request. Names become keys of the stored document, hence no '.' and no leading '$'.
"""

from __future__ import annotations

import math

MAX_NAME = 64


def name_problem(name) -> str | None:
    """Why ``name`` cannot be a label (None when it can)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or name.startswith("$") \
            or "." in name or "\x00" in name:
        return f"a label is 1–{MAX_NAME} characters, without '.' and not starting with '$' (e.g. 'SN Ia')"
    return None


def value_problem(value) -> str | None:
    """Why ``value`` cannot be a human label's value, the labeller's confidence (None when it can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "a label's value (the confidence) is a number between 0 and 1"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return "a label's value (the confidence) is between 0 and 1"
    return None
