"""A schemathesis check, loaded with ``SCHEMATHESIS_HOOKS``, for the one refusal that the suite's relaxed
``positive_data_acceptance`` (which allows 400: the schema cannot say which query strings the channel registry
knows) would hide: a schema-valid ``image`` part refused for its form, as a plain value without a filename was.
"""

from __future__ import annotations

import schemathesis


@schemathesis.check
def schema_valid_image_part_accepted(ctx, response, case) -> None:
    """Positive data must never get the device's 400 about the ``image`` field itself."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        return None
    if isinstance(detail, str) and "field 'image'" in detail:
        raise AssertionError(f"a schema-valid 'image' part was refused with 400: {detail}")
    return None
