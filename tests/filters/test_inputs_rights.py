"""Filters see no more than the API lets the same permissions see (one rule per survey)."""

from __future__ import annotations

import copy

from api.rights import Rights
from kowalski.filters.inputs import filter_input
from broker.pipeline import process_messages
from broker.produce import read_alert_files
from tests.conftest import shared_data


def test_winter_filters_are_restricted_by_program_id_as_the_api(config):
    files = read_alert_files([shared_data("alerts", "kowalski", "wntr_alerts")])
    res = process_messages("wntr", [data for _, data in files[:2]], config)
    assert len(res.alerts) == 2 and all(a["candidate"]["programid"] == 1 for a in res.alerts)
    public = res.alerts[0]
    private = copy.deepcopy(res.alerts[1])
    private["candidate"]["programid"] = 2  # as a partnership alert would be
    assert filter_input(public, None, [1], "wntr") is not None
    assert filter_input(private, None, [1], "wntr") is None  # the API hides it from programid-1 users
    assert filter_input(private, None, [1, 2], "wntr") is not None
    # the API applies the same rule, from the same survey definition
    rights = Rights(config, {"permissions": {}}, is_admin=False)
    assert rights.condition("WNTR_alerts") == {"candidate.programid": 1}
    granted = Rights(config, {"permissions": {"wntr": [2]}}, is_admin=False)
    assert granted.condition("WNTR_alerts") == {"candidate.programid": {"$in": [1, 2]}}
