"""Field types of the event catalogue (docs/events.md).

JSON is the wire format, so the types are strict about JSON kinds: booleans must be JSON booleans,
money must be a decimal *string* (a JSON number would pass through binary floating point somewhere
upstream), timestamps must be RFC 3339 strings with an offset.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer, StringConstraints

# RFC 3339 date-time: full date, 'T' (or space, allowed by RFC 3339 §5.6 note), time, mandatory offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
# Up to 18 integer digits and 4 fraction digits: cents plus the sub-cent precision some claim
# systems carry; anything finer is a data error, not a price.
_DECIMAL = re.compile(r"^-?\d{1,18}(\.\d{1,4})?$")


def _rfc3339_string(value: Any) -> Any:
    if isinstance(value, datetime):  # already parsed (re-validation of a model dump)
        return value
    if not isinstance(value, str):
        raise ValueError(
            "must be an RFC 3339 timestamp string with an offset, e.g. 2026-01-31T08:00:00-05:00"
        )
    if not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T08:00:00-05:00")
    return value


def _decimal_string(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError(
            'must be a decimal string such as "1250.00" (JSON numbers are not accepted for money)'
        )
    if not _DECIMAL.match(value):
        raise ValueError(
            'must be a decimal string with at most 18 integer and 4 fraction digits, e.g. "1250.00"'
        )
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
        raise ValueError("not a decimal number") from exc


def _non_negative_decimal_string(value: Any) -> Any:
    amount = _decimal_string(value)
    if amount < 0:
        raise ValueError("must not be negative")
    return amount


def _positive_decimal_string(value: Any) -> Any:
    amount = _decimal_string(value)
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return amount


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]
"""Timezone-aware instant; serialised back as ISO 8601 with its original offset."""

# One Python call per money field (checks and conversion together): validation is on ingest's hot path.
_AS_DECIMAL_STRING = PlainSerializer(lambda d: format(d, "f"), return_type=str)
Money = Annotated[Decimal, BeforeValidator(_non_negative_decimal_string), _AS_DECIMAL_STRING]
"""A non-negative amount of money as a decimal string; serialised as a plain decimal string."""
PositiveMoney = Annotated[Decimal, BeforeValidator(_positive_decimal_string), _AS_DECIMAL_STRING]
"""A strictly positive amount (used where it is a divisor, e.g. average daily net revenue)."""

_SOURCE_PATTERN = r"^[A-Za-z0-9._~:@!$&'()*+,;=%-]+$"
_FACILITY_PATTERN = r"^[A-Za-z0-9._-]+$"
_LABEL_PATTERN = r"^[a-z0-9_]+$"
_PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"

PATTERN_RULES: dict[str, str] = {
    # A CloudEvents source is a URI-reference; it is also one path segment of the event lookup URL
    # (`GET /v1/events/{source}/{id}`), so '/', '?' and '#' are not allowed.
    _SOURCE_PATTERN: "must be URI characters without '/', '?', '#' or spaces",
    _FACILITY_PATTERN: "must be letters, digits, '.', '_' or '-'",
    _LABEL_PATTERN: "must be lower-case letters, digits or '_' (e.g. ehr, revenue_cycle)",
    _PRINTABLE_PATTERN: "must not contain control characters (NUL, tab, line breaks…)",
}
"""Readable error text for each pattern (patterns are checked inside pydantic-core, which is fast)."""

Ref = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE_PATTERN)]
"""An identifier issued by the hospital's systems (encounter, order, claim…)."""
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE_PATTERN)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_SOURCE_PATTERN)]
FacilityId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_FACILITY_PATTERN)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE_PATTERN)]
"""A name people read (a tenant's, a key's, a contract's); no control characters — PostgreSQL refuses NUL."""
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_LABEL_PATTERN)]
"""A lower-case label used as a KPI dimension value (outage system, cost category)."""
