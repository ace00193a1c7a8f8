"""The packaged JSON Schema of our OpenLineage facets, and a validator for one facet of it."""

from __future__ import annotations

import json
from functools import cache

import jsonschema

from airflow_mltrack.operators import lineage


@cache
def packaged_schema() -> dict:
    return json.loads(lineage.schema_text())


def validate_facet(facet: dict, definition: str) -> None:
    """``facet`` is valid against ``#/$defs/<definition>`` and says so in its ``_schemaURL``."""
    schema = packaged_schema()
    assert facet["_schemaURL"] == f"{schema['$id']}#/$defs/{definition}", facet["_schemaURL"]
    assert facet["_schemaURL"].startswith(lineage.SCHEMA_URL)
    wrapper = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    validator = jsonschema.Draft202012Validator(wrapper, format_checker=jsonschema.FormatChecker())
    validator.validate(facet)
