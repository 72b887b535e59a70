"""The OpenAPI 3 description of the API (served at ``/docs/api/openapi.json``) and its HTML page.

Written by hand next to the handlers it describes, checked against the live server by the
property-based test (schemathesis): every documented request shape is accepted or refused with a
documented 4xx, and every response matches its schema.
"""

from __future__ import annotations

import html
import json
from typing import Any

from api.auth import SUPPORTED_PENQUINS_VERSIONS
from api.coords import ANGULAR_UNITS
from api.handlers.cutouts import CMAPS, CUTOUTS, FORMATS, INTERVALS, STRETCHES
from api.handlers.queries import INFO_COMMANDS, QUERY_TYPES

# kowalski.labels: a label's value is the confidence (or score), from 0 to 1
_LABEL_VALUE = {"type": "number", "minimum": 0, "maximum": 1}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, example: Any = None) -> dict:
    content: dict = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"content": {"application/json": content}}


ERRORS = {
    "400": ("Bad request: malformed JSON, wrong types, invalid token, query refused by the database "
            "or cut at max_time_ms. The message says what is wrong."),
    "401": "Missing token or bad credentials (message: Unauthorized).",
    "403": "Not allowed: admin-only (message: Forbidden) or a protected collection.",
    "404": "Not found.",
    "405": "Method not allowed.",
    "409": "Already exists.",
    "413": "Request body too large.",
    "422": "Stored data cannot be rendered.",
    "503": "Database unavailable.",
}


def _responses(ok: dict, *codes: str) -> dict:
    out = {"200": ok}
    for code in ("400", "413", *codes):
        out[code] = {"description": ERRORS[code], **_json(_ref("Error"))}
    return out


def _success(description: str, data: dict | None = None, example: Any = None) -> dict:
    schema: dict = {"allOf": [_ref("Success")]}
    if data is not None:
        schema = {"type": "object", "required": ["status", "message", "data"],
                  "properties": {"status": {"type": "string", "enum": ["success"]}, "message": {"type": "string"},
                                 "data": data}}
    return {"description": description, **_json(schema, example)}


AUTH = [{"token": []}]

QUERY_EXAMPLES = {
    "cone_search": {"query_type": "cone_search", "query": {
        "object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "arcsec",
                               "radec": {"object1": [71.6577756, -10.2263957]}},
        "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1, "objectId": 1}}}},
        "kwargs": {"filter_first": False}},
    "find": {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candidate.drb": {"$gt": 0.9}},
                                              "projection": {"_id": 0, "candid": 1, "candidate.drb": 1}},
             "kwargs": {"sort": [["candid", -1]], "limit": 2}},
    "find_one": {"query_type": "find_one", "query": {"catalog": "ZTF_alerts", "filter": {},
                                                      "projection": {"_id": 0, "objectId": 1}}},
    "aggregate": {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [
        {"$match": {"candid": 1127561445515015011}}, {"$project": {"_id": 0, "candid": 1}}]},
        "kwargs": {"max_time_ms": 2000}},
    "count_documents": {"query_type": "count_documents",
                        "query": {"catalog": "ZTF_alerts", "filter": {"objectId": "ZTF20aakyoez"}}},
    "estimated_document_count": {"query_type": "estimated_document_count", "query": {"catalog": "ZTF_alerts"}},
    "near": {"query_type": "near", "query": {
        "max_distance": 30, "distance_units": "arcsec", "radec": {"object1": [71.6577756, -10.2263957]},
        "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1, "objectId": 1}}}},
        "kwargs": {"limit": 1}},
    "info": {"query_type": "info", "query": {"command": "catalog_names"}},
    "drop": {"query_type": "drop", "query": {"catalog": "my_scratch_collection"}},
    "skymap": {"query_type": "skymap", "query": {
        "skymap": {"dateobs": "2017-08-17T12:41:04.4", "localization_name": "GW170817.multiorder.fits", "contour": 90},
        "catalog": "ZTF_alerts", "filter": {"candidate.drb": {"$gt": 0.5}}, "time_window_days": [0, 3],
        "projection": {"_id": 0, "candid": 1, "objectId": 1}}, "kwargs": {"limit": 100}},
}


def _schemas() -> dict:
    obj = {"type": "object"}
    obj_or_text = {"anyOf": [{"type": "object"}, {"type": "string"}],
                   "description": "an object, or its JSON text (Kowalski also accepted Python literals)"}
    catalog = {"type": "string", "minLength": 1, "description": "a collection name (see info/catalog_names)"}
    catalogs = {"type": "object", "minProperties": 1,
                "additionalProperties": {"type": "object", "properties": {"filter": obj_or_text, "projection": obj_or_text}},
                "description": "catalog → {filter, projection}"}
    radec = {"description": "{name: [ra, dec]}, [[ra, dec], ...] or 'ra dec' / 'HH:MM:SS ±DD:MM:SS' string; "
                            "degrees or sexagesimal",
             "oneOf": [{"type": "object", "minProperties": 1, "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2}},
                       {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 2, "maxItems": 2}},
                       {"type": "string", "minLength": 3}]}
    kwargs = {"type": "object", "description": "Unknown keys are ignored (Kowalski compatibility).", "properties": {
        "limit": {"type": "integer", "minimum": 0}, "skip": {"type": "integer", "minimum": 0},
        "sort": {"description": "[[field, 1|-1], ...] or {field: 1|-1}",
                 "oneOf": [{"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}},
                           {"type": "object"}]},
        "hint": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]},
        "max_time_ms": {"type": "integer", "minimum": 1, "description": "default 300000"},
        "filter_first": {"type": "boolean"}, "allowDiskUse": {"type": "boolean"}}}

    def q(qtype: str, query: dict, required: list[str] | None = None) -> dict:
        return {"type": "object", "required": ["query_type", "query"], "properties": {
            "query_type": {"type": "string", "enum": [qtype]},
            "query": {"type": "object", "required": required or [], "properties": query},
            "kwargs": _ref("QueryKwargs")}}

    return {
        "Error": {"type": "object", "required": ["status", "message"], "properties": {
            "status": {"type": "string", "enum": ["error"]}, "message": {"type": "string"}}},
        "Success": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["success"]}, "message": {"type": "string"}, "data": {}}},
        "QueryKwargs": kwargs,
        "FindQuery": q("find", {"catalog": catalog, "filter": obj_or_text, "projection": obj_or_text}, ["catalog"]),
        "FindOneQuery": q("find_one", {"catalog": catalog, "filter": obj_or_text, "projection": obj_or_text}, ["catalog"]),
        "CountDocumentsQuery": q("count_documents", {"catalog": catalog, "filter": obj_or_text}, ["catalog"]),
        "EstimatedDocumentCountQuery": q("estimated_document_count", {"catalog": catalog}, ["catalog"]),
        "AggregateQuery": q("aggregate", {"catalog": catalog, "pipeline": {"anyOf": [
            {"type": "array", "minItems": 1, "items": obj}, {"type": "string"}]}},
                            ["catalog", "pipeline"]),
        "InfoQuery": q("info", {"command": {"type": "string", "enum": list(INFO_COMMANDS)}, "catalog": catalog},
                       ["command"]),
        "ConeSearchQuery": q("cone_search", {
            "object_coordinates": {"type": "object", "required": ["cone_search_radius", "radec"], "properties": {
                "cone_search_radius": {"type": "number", "minimum": 0},
                "cone_search_unit": {"type": "string", "enum": list(ANGULAR_UNITS)}, "radec": radec}},
            "catalogs": catalogs}, ["object_coordinates", "catalogs"]),
        "NearQuery": q("near", {
            "radec": radec, "catalogs": catalogs, "min_distance": {"type": "number", "minimum": 0},
            "max_distance": {"type": "number", "minimum": 0, "description": "default: 1 arcmin"},
            "distance_units": {"type": "string", "enum": list(ANGULAR_UNITS), "default": "rad"}},
            ["radec", "catalogs"]),
        "DropQuery": q("drop", {"catalog": catalog}, ["catalog"]),
        "SkymapQuery": q("skymap", {
            "skymap": {"type": "object", "required": ["localization_name"], "properties": {
                "localization_name": {"type": "string", "minLength": 1},
                "dateobs": {"type": "string", "description": "YYYY-MM-DDTHH:MM:SS[.ffffff]"},
                "trigger_id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "triggerid": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "aliases": {"type": "array", "items": {"type": "string"}},
                "contour": {"type": "integer", "minimum": 1, "maximum": 100, "default": 90}},
                "description": "the stored skymap (one of dateobs, trigger_id, aliases) and its credible level"},
            "catalog": catalog, "filter": obj_or_text, "projection": obj_or_text,
            "time_window_days": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"},
                                 "description": "[from, to] days relative to the skymap's dateobs, on jd_field"},
            "jd_field": {"type": "string", "minLength": 1, "default": "candidate.jd"}},
            ["skymap", "catalog"]),
        "Query": {"oneOf": [_ref(n) for n in (
            "FindQuery", "FindOneQuery", "CountDocumentsQuery", "EstimatedDocumentCountQuery", "AggregateQuery",
            "InfoQuery", "ConeSearchQuery", "NearQuery", "DropQuery", "SkymapQuery")],
            "discriminator": {"propertyName": "query_type"}},
        "Labels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object", "properties": {
            "human_labels": {"oneOf": [{"type": "object", "additionalProperties": _LABEL_VALUE},
                                       {"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
            "ml_scores": {"oneOf": [{"type": "object", "additionalProperties": _LABEL_VALUE},
                                    {"type": "array", "items": {"type": "string"}}, {"type": "string"}]}}},
            "description": "candid → labels"},
    }


def _inline(node: Any, schemas: dict) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(schemas[ref.rsplit("/", 1)[1]], schemas)
        return {k: _inline(v, schemas) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_inline(v, schemas) for v in node]
    return node


QUERY_SCHEMA_NAMES = {"find": "FindQuery", "find_one": "FindOneQuery", "count_documents": "CountDocumentsQuery",
                      "estimated_document_count": "EstimatedDocumentCountQuery", "aggregate": "AggregateQuery",
                      "info": "InfoQuery", "cone_search": "ConeSearchQuery", "near": "NearQuery", "drop": "DropQuery",
                      "skymap": "SkymapQuery"}


def query_schema(query_type: str) -> dict:
    """The request schema of one query type, self-contained (used to validate requests)."""
    schemas = _schemas()
    return _inline(schemas[QUERY_SCHEMA_NAMES[query_type]], schemas)


def _filter_paths() -> dict:
    """/api/filters (handlers/filters.py)."""
    pipeline = {"description": "aggregation pipeline: a list of stages, or its JSON string",
                "anyOf": [{"type": "array", "minItems": 1, "items": {"type": "object"}}, {"type": "string"}]}
    autosave = {"description": "false/true or {active, comment, ignore_group_ids, pipeline, saver_id}",
                "anyOf": [{"type": "boolean"}, {"type": "object", "additionalProperties": False, "properties": {
                    "active": {"type": "boolean"}, "comment": {"type": "string"},
                    "ignore_group_ids": {"type": "array", "items": {"type": "integer"}}, "pipeline": pipeline,
                    "saver_id": {"type": "integer"}}}]}
    auto_followup = {"type": "object", "description": "{} or {active, allocation_id, comment, payload, pipeline, "
                     "priority_order (asc|desc), target_group_ids, ignore_allocation_ids, not_if_tns_reported, "
                     "radius, validity_days, implements_update}; needs autosave enabled"}
    fid = {"type": "string", "minLength": 6, "maxLength": 6}

    def nullable(props: dict) -> dict:
        return {k: {**v, "nullable": True} for k, v in props.items()}
    version = {"type": "object", "required": ["fid", "pipeline", "created_at"], "properties": {
        "fid": fid, "pipeline": {"type": "string"}, "created_at": {"type": "object"}}}
    filter_doc = {"type": "object", "required": ["filter_id", "group_id", "catalog", "fv"], "properties": {
        "filter_id": {"type": "integer"}, "group_id": {"type": "integer"}, "catalog": {"type": "string"},
        "permissions": {"type": "array", "items": {"type": "integer"}}, "active": {"type": "boolean"},
        "active_fid": fid, "fv": {"type": "array", "items": version}, "autosave": {},
        "auto_followup": {"type": "object"}, "update_annotations": {"type": "boolean"}}}
    fpath = {"name": "filter_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    example = {"group_id": 1, "filter_id": 1, "catalog": "ZTF_alerts", "permissions": [1, 2], "pipeline": [
        {"$match": {"candidate.drb": {"$gt": 0.9999}, "cross_matches.CLU_20190625.0": {"$exists": False}}},
        {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}}]}
    return {
        "/api/filters": {
            "get": {"summary": "The filters of your groups (admin: all)", "operationId": "list_filters",
                    "tags": ["filters"], "security": AUTH,
                    "description": ("Paged as JupyterHub's API pages lists: `offset` and `limit` (default and "
                                    "maximum `api.page_max_limit`, 200); `_pagination` gives offset, limit, total "
                                    "and the next page (null on the last)."),
                    "parameters": [
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                    "responses": _responses(_success("Filters", {"type": "array", "items": filter_doc}), "400", "401")},
            "post": {"summary": "Save a filter version (creates the filter on its first version)",
                     "operationId": "save_filter", "tags": ["filters"], "security": AUTH,
                     "description": ("The pipeline is compiled by the broker's filter engine (unsupported operators "
                                     "are refused by name; $lookup, $unionWith, $out, $merge are forbidden) and "
                                     "dry-run on the latest alert. Members of group_id (admin: all) may save. "
                                     "Activation is refused when the version passes more than "
                                     "filters.flood_guard_share of the most recent archived alerts."),
                     "requestBody": {"required": True, **_json({
                         "type": "object", "required": ["group_id", "filter_id", "catalog", "pipeline"],
                         "additionalProperties": False, "properties": {
                             "group_id": {"type": "integer", "minimum": 1}, "filter_id": {"type": "integer", "minimum": 1},
                             "catalog": {"type": "string"}, "permissions": {"type": "array", "items": {"type": "integer"}},
                             "pipeline": pipeline, "active": {"type": "boolean"},
                             **nullable({"autosave": autosave, "auto_followup": auto_followup}),
                             "update_annotations": {"type": "boolean"}}}, example)},
                     "responses": _responses(_success("Saved version", version), "401", "403", "409")},
            "patch": {"summary": "Change active, active_fid, autosave, auto_followup, update_annotations",
                      "operationId": "update_filter", "tags": ["filters"], "security": AUTH,
                      "requestBody": {"required": True, **_json({
                          "type": "object", "required": ["filter_id"], "additionalProperties": False, "properties": {
                              "filter_id": {"type": "integer", "minimum": 1}, **nullable({
                                  "active": {"type": "boolean"}, "active_fid": {"type": "string"},
                                  "autosave": autosave, "auto_followup": auto_followup,
                                  "update_annotations": {"type": "boolean"}})},
                          "description": "null values are ignored (Kowalski)"}, {"filter_id": 1, "active": False})},
                      "responses": _responses(_success("Updated", filter_doc), "401", "403")}},
        "/api/filters/{filter_id}": {
            "parameters": [fpath],
            "get": {"summary": "A filter with its versions", "operationId": "get_filter", "tags": ["filters"],
                    "security": AUTH, "responses": _responses(_success("The filter", filter_doc), "401", "403")},
            "delete": {"summary": "Remove a filter", "operationId": "remove_filter", "tags": ["filters"],
                       "security": AUTH, "responses": _responses(_success("Removed"), "401", "403")}},
        "/api/filters/{filter_id}/test": {
            "parameters": [fpath],
            "post": {"summary": "Run a version over archived alerts (object ids and/or a JD range)",
                     "operationId": "test_filter", "tags": ["filters"], "security": AUTH,
                     "description": ("The last version unless filter_version is given. Without object_ids the "
                                     "range is at most one day. `data`: the pipeline outputs; `summary`: alerts, "
                                     "passed, rate, errors, seconds, and stage_counts: the alerts with documents "
                                     "remaining after stages 1..n (each the pass count of that prefix alone; "
                                     "the last is passed)."),
                     "requestBody": {"required": True, **_json({"type": "object", "properties": nullable({
                         "filter_version": {"type": "string"},
                         "object_ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}},
                         "start_date": {"anyOf": [{"type": "number"}, {"type": "string"}]},
                         "end_date": {"anyOf": [{"type": "number"}, {"type": "string"}]},
                         "max_time_ms": {"type": "integer", "minimum": 1, "maximum": 300000}}),
                         "description": "null values count as absent"},
                         {"start_date": 2460229.9338542, "end_date": 2460230.9338542})},
                     "responses": _responses(_success("Outputs", {"type": "array", "items": {"type": "object"}}),
                                             "401", "403")}},
        "/api/users/{username}/groups": {
            "parameters": [{"name": "username", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}],
            "get": {"summary": "The groups of a user (your own, or any for the admin)", "operationId": "get_user_groups", "tags": ["users"],
                    "security": AUTH, "responses": _responses(_success("Groups"), "401", "403")},
            "put": {"summary": "Set the groups of a user, whose filters they may manage (admin)",
                    "operationId": "set_user_groups", "tags": ["users"], "security": AUTH,
                    "requestBody": {"required": True, **_json({"type": "object", "required": ["groups"],
                                                                "additionalProperties": False, "properties": {
                        "groups": {"type": "array", "items": {"type": "integer", "minimum": 1}}}}, {"groups": [1]})},
                    "responses": _responses(_success("Set"), "401", "403")}},
    }


def _skymap_paths() -> dict:
    """/api/skymap and /api/skymaps (handlers/skymap.py)."""
    number = {"type": "number"}
    skymap = {"type": "object", "description": (
        "one of {localization_name, uniq, probdensity} (multi-order map), {localization_name, content} (base64 FITS), "
        "{url} (fetched by the server), {ra, dec, error} (Gaussian error circle, degrees), {localization_name, "
        "polygon: [[ra, dec], ...]}, {localization_name, ra, dec, amaj, amin, phi} (ellipse, uniform)"),
        "properties": {"localization_name": {"type": "string"}, "uniq": {"type": "array", "items": {"type": "integer"}},
                       "probdensity": {"type": "array", "items": number}, "content": {"type": "string"},
                       "url": {"type": "string"}, "ra": number, "dec": number, "error": number, "amaj": number,
                       "amin": number, "phi": number, "polygon": {"type": "array", "items": {"type": "array", "items": number}}}}
    levels = {"description": "credible levels in percent: 90, [90, 95] or \"90,95\" (default [90])",
              "anyOf": [number, {"type": "array", "items": number}, {"type": "string"}]}
    put_body = {"type": "object", "description": "null values count as absent", "properties": {
        k: {**v, "nullable": True} for k, v in {
            "dateobs": {"anyOf": [{"type": "string"}, {"type": "object"}],
                        "description": "YYYY-MM-DDTHH:MM:SS[.ffffff] (UTC) or {$date}; else from the VOEvent or FITS"},
            "triggerid": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "aliases": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
                "anyOf": [{"type": "string"}, {"type": "integer"}]}}], "description": "e.g. LVC#S170817a; numbers become strings"},
            "voevent": {"type": "string"}, "skymap": skymap, "contours": levels}.items()}}
    stored = {"type": "object", "required": ["dateobs", "localization_name", "contours"], "properties": {
        "dateobs": {"type": "string"}, "localization_name": {"type": "string"},
        "contours": {"type": "array", "items": {"type": "integer"}}}}
    ok_or_error = {"description": "Success, or an error with HTTP 200 (as Kowalski answers GET/DELETE errors)",
                   **_json({"type": "object", "required": ["status"], "properties": {
                       "status": {"type": "string", "enum": ["success", "error"]}, "message": {"type": "string"},
                       "data": {"type": "object"}}})}
    sel = {"type": "string", "description": "empty counts as absent"}
    return {
        "/api/skymap": {
            "put": {"summary": "Store a skymap's credible regions (contours and MOCs), or add levels",
                    "operationId": "put_skymap", "tags": ["skymaps"], "security": AUTH,
                    "requestBody": {"required": True, **_json(put_body, {
                        "dateobs": "2023-06-23T15:42:26", "skymap": {"ra": 90, "dec": 30, "error": 10}, "contours": [90]})},
                    "responses": {**_responses(_success("Added or updated", stored), "401"),
                                  "409": {"description": "Every level asked for is stored already", **_json({
                                      "type": "object", "required": ["status", "message", "data"], "properties": {
                                          "status": {"type": "string", "enum": ["already_exists"]},
                                          "message": {"type": "string"}, "data": stored}})}}},
            "get": {"summary": "A stored skymap (contours; region MOCs with moc=true)", "operationId": "get_skymap",
                    "tags": ["skymaps"], "security": AUTH,
                    "parameters": [{"name": n, "in": "query", "schema": sel} for n in (
                        "dateobs", "triggerid", "alias", "localization_name", "contours")]
                    + [{"name": "moc", "in": "query", "schema": {
                        "type": "string", "description": "true (or 1, yes) adds each region's MOC (depth-29 ranges)"}}],
                    "responses": {"200": ok_or_error, **{c: {"description": ERRORS[c], **_json(_ref("Error"))}
                                                         for c in ("400", "401")}}},
            "delete": {"summary": "Remove a skymap", "operationId": "delete_skymap", "tags": ["skymaps"], "security": AUTH,
                       "requestBody": {"required": True, **_json({"type": "object", "description": (
                           "dateobs, triggerid or alias, and localization_name; a missing or wrong one is answered "
                           "with an error and HTTP 200, as Kowalski does"), "properties": {
                           "dateobs": {}, "triggerid": {}, "alias": {}, "localization_name": {}}},
                           {"dateobs": "2023-06-23T15:42:26", "localization_name": "90.00000_30.00000_10.00000"})},
                       "responses": {"200": ok_or_error, **{c: {"description": ERRORS[c], **_json(_ref("Error"))}
                                                            for c in ("400", "401", "413")}}}},
        "/api/skymaps": {"get": {
            "summary": "The stored skymaps, newest event first", "operationId": "list_skymaps", "tags": ["skymaps"],
            "security": AUTH, "parameters": [
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
            "responses": _responses(_success("Skymaps", {"type": "array", "items": {"type": "object"}}), "401")}},
    }


def build_spec(config) -> dict:
    surveys = list(config["surveys"])
    survey = {"name": "survey", "in": "path", "required": True, "schema": {"type": "string", "enum": surveys}}
    candid = {"name": "candid", "in": "path", "required": True,
              "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
    username = {"name": "username", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    user_body = {"type": "object", "properties": {
        "username": {"type": "string"}, "password": {"type": "string"}, "email": {"type": "string"},
        "permissions": {"type": "object", "description": "{survey: [programid, ...]}", "additionalProperties": False,
                        "properties": {s: {"type": "array", "items": {"type": "integer"}} for s in surveys}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Kowalski API", "version": "3.0.0", "license": {"name": "MIT"},
            "description": (
                "Kowalski-compatible REST API of the alert archive. Authenticate with POST /api/auth, then send "
                "`Authorization: <token>` (or `Bearer <token>`). Bodies are JSON; success bodies are MongoDB "
                "relaxed extended JSON in the envelope {status, message, data}. Non-admin users see the alerts "
                "and history points of the program ids they are granted (public ones by default); system "
                "collections are reserved to the admin."),
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "the JWT from /api/auth, bare or as `Bearer <token>`"}},
            "schemas": _schemas(),
        },
        "paths": {
            "/": {"get": {
                "summary": "Ping", "operationId": "ping", "tags": ["auth"], "security": AUTH,
                "responses": _responses(_success("Greetings", example={"status": "success", "message": "greetings from Kowalski!"}), "401")}},
            "/api/auth": {"post": {
                "summary": "Get a token", "operationId": "auth", "tags": ["auth"], "security": [],
                "requestBody": {"required": True, **_json({"type": "object", "required": ["username", "password"], "properties": {
                    "username": {"type": "string", "minLength": 1}, "password": {"type": "string", "minLength": 1},
                    "penquins.__version__": {"type": "string", "enum": list(SUPPORTED_PENQUINS_VERSIONS)}}}, {"username": "admin", "password": "***", "penquins.__version__": "2.4.2"})},
                "responses": _responses({"description": "A JWT", **_json({"type": "object", "required": ["status", "token"], "properties": {
                    "status": {"type": "string", "enum": ["success"]}, "token": {"type": "string"}}})}, "401")}},
            "/api/users": {"post": {
                "summary": "Add a user (admin)", "operationId": "add_user", "tags": ["users"], "security": AUTH,
                "requestBody": {"required": True, **_json({**user_body, "required": ["username", "password"]},
                                                           {"username": "alice", "password": "s3cret", "permissions": {"ztf": [1, 2]}})},
                "responses": _responses(_success("Added"), "401", "403", "409")}},
            "/api/users/{username}": {
                "parameters": [username],
                "put": {"summary": "Rename a user, change password, e-mail or permissions (admin)", "operationId": "edit_user",
                        "tags": ["users"], "security": AUTH,
                        "requestBody": {"required": True, **_json(user_body, {"password": "n3w"})},
                        "responses": _responses(_success("Edited"), "401", "403", "409")},
                "delete": {"summary": "Remove a user (admin)", "operationId": "remove_user", "tags": ["users"], "security": AUTH,
                           "responses": _responses(_success("Removed"), "401", "403")}},
            "/api/queries": {"post": {
                "summary": "Query the archive", "operationId": "query", "tags": ["queries"], "security": AUTH,
                "description": (
                    "query_type: " + ", ".join(QUERY_TYPES) + ". `data` is a list of documents (find, aggregate), a "
                    "document or null (find_one), an integer (counts), {catalog: {object name: [documents]}} "
                    "(cone_search, near), a list or object (info). drop is admin-only. `$where`, `$function`, "
                    "`$accumulator`, `$out` and `$merge` are refused anywhere."),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("Query"), "examples": {k: {"value": v} for k, v in QUERY_EXAMPLES.items()}}}},
                "responses": _responses({"description": "Successfully executed query", **_json(_ref("Success"))},
                                        "401", "403", "503")}},
            "/api/cutouts/{survey}/{candid}/{cutout}/{file_format}": {"get": {
                "summary": "An alert cutout as FITS or PNG (North up, East left)", "operationId": "cutout",
                "tags": ["alerts"], "security": AUTH,
                "parameters": [survey, candid,
                               {"name": "cutout", "in": "path", "required": True, "schema": {"type": "string", "enum": list(CUTOUTS)}},
                               {"name": "file_format", "in": "path", "required": True, "schema": {"type": "string", "enum": list(FORMATS)}},
                               {"name": "stretch", "in": "query", "schema": {"type": "string", "enum": list(STRETCHES)}},
                               {"name": "interval", "in": "query", "schema": {"type": "string", "enum": list(INTERVALS)}},
                               {"name": "cmap", "in": "query", "schema": {"type": "string", "enum": list(CMAPS)}},
                               {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 16, "maximum": 1024}}],
                "responses": {
                    "200": {"description": "The image", "content": {
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                        "image/fits": {"schema": {"type": "string", "format": "binary"}}}},
                    **{c: {"description": ERRORS[c], **_json(_ref("Error"))} for c in ("400", "401", "404", "413", "422")}}}},
            "/api/classifications/{survey}": {
                "parameters": [survey],
                "put": {"summary": "Add or update classifications", "operationId": "put_classifications",
                        "tags": ["alerts"], "security": AUTH,
                        "requestBody": {"required": True, **_json(_ref("Labels"), {"2475433850015010009": {"human_labels": {"Ia": 0.8}}})},
                        "responses": _responses(_success("Added"), "401")},
                "delete": {"summary": "Remove classification labels", "operationId": "delete_classifications",
                           "tags": ["alerts"], "security": AUTH,
                           "requestBody": {"required": True, **_json(_ref("Labels"), {"2475433850015010009": {"human_labels": ["Ia"]}})},
                           "responses": _responses(_success("Deleted"), "401")}},
            "/api/classifications/{survey}/{candid}": {"get": {
                "summary": "The classifications of an alert", "operationId": "get_classifications",
                "tags": ["alerts"], "security": AUTH, "parameters": [survey, candid],
                "responses": _responses(_success("Classifications", {"type": "object", "required": ["candid", "human_labels"], "properties": {
                    "candid": {"type": "integer"}, "objectId": {"type": "string", "nullable": True},
                    "human_labels": {"type": "object"}, "ml_scores": {"type": "object"}}}), "401", "404")}},
            **_filter_paths(),
            **_skymap_paths(),
            "/docs/api/openapi.json": {"get": {
                "summary": "This description", "operationId": "openapi", "tags": ["docs"], "security": [],
                "responses": {"200": {"description": "OpenAPI 3", **_json({"type": "object"})}}}},
            "/docs/api": {"get": {
                "summary": "This description as HTML", "operationId": "docs", "tags": ["docs"], "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
    }


# --- a self-contained HTML page (no CDN is reachable) --------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header{background:#1d2b3a;color:#fff;padding:1.2em 2em}header h1{margin:0;font-size:1.5em}
main{display:flex}nav{width:17em;padding:1em;position:sticky;top:0;height:100vh;overflow:auto;border-right:1px solid #dde}
nav a{display:block;color:#234;text-decoration:none;font-size:.9em;padding:.15em 0}
section{flex:1;padding:1em 2em;max-width:70em}.op{background:#fff;border:1px solid #dde;border-radius:6px;margin:1em 0;padding:1em}
.m{display:inline-block;font-weight:bold;color:#fff;border-radius:3px;padding:.1em .5em;margin-right:.5em;font-size:.85em}
.get{background:#2f7d32}.post{background:#1565c0}.put{background:#ef6c00}.delete{background:#c62828}.patch{background:#6a1b9a}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}pre{background:#f3f5f7;padding:.7em;overflow:auto;border-radius:4px}
table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.25em .6em;text-align:left;font-size:.9em}
.lock{color:#a66;font-size:.85em}
"""


def render_html(spec: dict) -> str:
    e = html.escape
    info = spec["info"]
    nav, body = [], []
    for path, item in spec["paths"].items():
        common = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            anchor = f"{method}-{path}".replace("/", "_").replace("{", "").replace("}", "")
            nav.append(f'<a href="#{e(anchor)}"><span class="m {method}">{method.upper()}</span>{e(path)}</a>')
            parts = [f'<div class="op" id="{e(anchor)}"><h3><span class="m {method}">{method.upper()}</span>'
                     f'<code>{e(path)}</code> — {e(op.get("summary", ""))}</h3>']
            if op.get("security"):
                parts.append('<div class="lock">requires a token (Authorization header)</div>')
            if op.get("description"):
                parts.append(f"<p>{e(op['description'])}</p>")
            params = common + op.get("parameters", [])
            if params:
                rows = "".join(f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                               f"<td><code>{e(json.dumps(p.get('schema', {})))}</code></td></tr>" for p in params)
                parts.append(f"<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>{rows}</table>")
            rb = op.get("requestBody", {}).get("content", {}).get("application/json")
            if rb:
                examples = rb.get("examples") or ({"example": {"value": rb["example"]}} if "example" in rb else {})
                for name, ex in examples.items():
                    parts.append(f"<p>Request body ({e(name)}):</p><pre>{e(json.dumps(ex['value'], indent=2))}</pre>")
            rows = "".join(f"<tr><td>{e(code)}</td><td>{e(r.get('description', ''))}</td></tr>"
                           for code, r in op.get("responses", {}).items())
            parts.append(f"<table><tr><th>status</th><th>meaning</th></tr>{rows}</table></div>")
            body.append("".join(parts))
    schemas = "".join(f'<h3 id="schema-{e(n)}">{e(n)}</h3><pre>{e(json.dumps(s, indent=2))}</pre>'
                      for n, s in spec["components"]["schemas"].items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(info['title'])}</title>"
            f"<style>{_CSS}</style></head><body><header><h1>{e(info['title'])} <small>{e(info['version'])}</small></h1>"
            f"<p>{e(info['description'])}</p><p><a style='color:#9cf' href='/docs/api/openapi.json'>openapi.json</a></p></header>"
            f"<main><nav>{''.join(nav)}<hr><a href='#schemas'>Schemas</a></nav><section>{''.join(body)}"
            f"<h2 id='schemas'>Schemas</h2>{schemas}</section></main></body></html>")
