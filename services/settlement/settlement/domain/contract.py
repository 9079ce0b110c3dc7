"""The contract document (docs/contracts.md), validated completely at write time.

Every rule a statement depends on is checked here, so a stored contract can always be computed: kinds,
KPI names and dimensions, rates in [0, 1], tiers and bands in order, fee keys, caps. Errors name the
JSON path of the offending value (`$.terms[1].tiers[0].threshold`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from settlement.domain.money import MINOR_UNITS, decimal_text
from settlement.domain.periods import PeriodKind
from settlement.domain.sources import InputSource, KpiSource
from vr_shared.events.types import DisplayName, FacilityId
from vr_shared.events.validation import FieldError, json_path
from vr_shared.kpis import KPI_DIMENSIONS, KPIS_WITHOUT_DENOMINATOR

_DECIMAL = re.compile(r"^-?\d{1,18}(\.\d{1,12})?$")

# Bounds on what one contract may hold, so a document (a what-if too) costs bounded work to check and
# compute: far above any contract negotiated (a handful of terms, a few tiers each).
MAX_LIST = 50  # terms, tiers, bands, caps
MAX_FACILITIES = 500
# The dates a contract may name: a year mistyped (0026, 20260) is refused, not stored to be computed.
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2099, 12, 31)


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise ValueError(
            'must be a decimal string such as "0.02" or "250000.00" (JSON numbers are not accepted)'
        )
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern excludes it
        raise ValueError("not a decimal number") from exc


def _rate(value: Any) -> Any:
    rate = _decimal(value)
    if not Decimal(0) <= rate <= Decimal(1):
        raise ValueError('a rate is a decimal fraction between "0" and "1" ("0.02" is 2 %)')
    return rate


def _amount(value: Any) -> Any:
    amount = _decimal(value)
    if amount < 0:
        raise ValueError("must not be negative (the sign is given by the term, not the amount)")
    return amount


_AS_TEXT = PlainSerializer(decimal_text, return_type=str)
# What the API documents: decimal strings (JSON numbers are refused).
_DECIMAL_TEXT = WithJsonSchema(
    {"type": "string", "pattern": _DECIMAL.pattern, "examples": ["0.02", "250000.00"]}
)
Number = Annotated[Decimal, BeforeValidator(_decimal), _AS_TEXT, _DECIMAL_TEXT]
Rate = Annotated[Decimal, BeforeValidator(_rate), _AS_TEXT, _DECIMAL_TEXT]
Amount = Annotated[Decimal, BeforeValidator(_amount), _AS_TEXT, _DECIMAL_TEXT]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
FeeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

_SOURCE_KEYS = ("kpi", "input", "mssp_one_sided_scale", "one_minus_final_savings_rate")
_SOURCE_HINT = 'must be a decimal string, {"kpi": "<name>"} or {"input": "<name>"}'


def _source_tag(value: Any) -> str | None:
    """Which form a parameter takes; the tag appears in error locations and is dropped from paths."""
    if isinstance(value, str | Decimal):
        return "source:benchmark" if value == "benchmark" else "source:constant"
    if isinstance(value, KpiSource):
        return "source:kpi"
    if isinstance(value, InputSource):
        return "source:input"
    if isinstance(value, BaseModel):
        return f"source:{next(iter(type(value).model_fields))}"
    if isinstance(value, dict):
        return next((f"source:{tag}" for tag in _SOURCE_KEYS if tag in value), None)
    return None


_SOURCE = Discriminator(_source_tag, custom_error_type="value_source", custom_error_message=_SOURCE_HINT)
_KPI = Annotated[KpiSource, Tag("source:kpi")]
_INPUT = Annotated[InputSource, Tag("source:input")]
Param = Annotated[Annotated[Number, Tag("source:constant")] | _KPI | _INPUT, _SOURCE]
RateParam = Annotated[Annotated[Rate, Tag("source:constant")] | _KPI | _INPUT, _SOURCE]
AmountParam = Annotated[Annotated[Amount, Tag("source:constant")] | _KPI | _INPUT, _SOURCE]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MsspScale(_Strict):
    """`{"mssp_one_sided_scale": <population value source>}`"""

    mssp_one_sided_scale: Param


class LossRateRange(_Strict):
    min: Rate
    max: Rate


class OneMinusFinalRate(_Strict):
    """`{"one_minus_final_savings_rate": {"min": "0.40", "max": "0.75"}}`"""

    one_minus_final_savings_rate: LossRateRange


MinRate = Annotated[
    Annotated[Rate, Tag("source:constant")]
    | Annotated[KpiSource, Tag("source:kpi")]
    | Annotated[InputSource, Tag("source:input")]
    | Annotated[MsspScale, Tag("source:mssp_one_sided_scale")],
    Discriminator(
        _source_tag,
        custom_error_type="value_source",
        custom_error_message=_SOURCE_HINT[:-1] + ' or {"mssp_one_sided_scale": <population source>}',
    ),
]
LossRate = Annotated[
    Annotated[Rate, Tag("source:constant")]
    | Annotated[KpiSource, Tag("source:kpi")]
    | Annotated[InputSource, Tag("source:input")]
    | Annotated[OneMinusFinalRate, Tag("source:one_minus_final_savings_rate")],
    Discriminator(
        _source_tag,
        custom_error_type="value_source",
        custom_error_message=_SOURCE_HINT[:-1] + ' or {"one_minus_final_savings_rate": {"min", "max"}}',
    ),
]
CapBase = Annotated[
    Annotated[Literal["benchmark"], Tag("source:benchmark")]
    | Annotated[Number, Tag("source:constant")]
    | Annotated[KpiSource, Tag("source:kpi")]
    | Annotated[InputSource, Tag("source:input")],
    Discriminator(
        _source_tag, custom_error_type="value_source", custom_error_message=_SOURCE_HINT + ' or "benchmark"'
    ),
]


class Cap(_Strict):
    rate: Rate
    of: CapBase


class _Term(_Strict):
    id: Identifier


class SharedSavings(_Term):
    kind: Literal["shared_savings"]
    expenditure: Param
    benchmark: Param
    min_savings_rate: MinRate = Decimal(0)
    min_loss_rate: MinRate | None = None  # default: the minimum savings rate
    savings_rate: RateParam
    quality_score: RateParam | None = None
    quality_gate: Rate | None = None
    loss_rate: LossRate | None = None  # absent: one-sided, losses are never owed
    basis: Literal["first_dollar", "above_threshold"] = "first_dollar"
    savings_caps: list[Cap] = Field(default_factory=list, max_length=MAX_LIST)
    loss_caps: list[Cap] = Field(default_factory=list, max_length=MAX_LIST)
    cap_order: Literal["rate_then_cap", "cap_then_rate"] = "rate_then_cap"
    savings_payment_reduction: Rate = Decimal(0)


def _known_kpi_name(name: str) -> str:
    if name not in KPI_DIMENSIONS:
        raise ValueError(f"unknown KPI {name!r}; expected one of: {', '.join(KPI_DIMENSIONS)}")
    return name


KpiParam = Annotated[
    Annotated[str, AfterValidator(_known_kpi_name), Tag("source:constant")]
    | Annotated[KpiSource, Tag("source:kpi")]
    | Annotated[InputSource, Tag("source:input")],
    Discriminator(
        _source_tag,
        custom_error_type="value_source",
        custom_error_message='must be a KPI name, {"kpi": "<name>", "dimension": {..}} or {"input": ".."}',
    ),
]


def _kpi_source(value: str | KpiSource | InputSource) -> KpiSource | InputSource:
    return KpiSource(kpi=value) if isinstance(value, str) else value


class Tier(_Strict):
    threshold: Number
    amount: Number


class KpiIncentive(_Term):
    kind: Literal["kpi_incentive"]
    kpi: KpiParam
    direction: Literal["lower_is_better", "higher_is_better"]
    baseline: Param | None = None
    target: Param | None = None
    floor: Param | None = None
    max_reward: AmountParam = Decimal(0)
    max_penalty: AmountParam = Decimal(0)
    curve: Literal["linear", "tiers"] = "linear"
    tiers: list[Tier] | None = Field(default=None, max_length=MAX_LIST)
    min_denominator: Amount | None = None

    @property
    def source(self) -> KpiSource | InputSource:
        return _kpi_source(self.kpi)


class SlaTier(_Strict):
    below: Number
    credit_rate: Rate


class SlaCredit(_Term):
    kind: Literal["sla_credit"]
    kpi: KpiParam
    fee: FeeName
    tiers: list[SlaTier] = Field(min_length=1, max_length=MAX_LIST)

    @property
    def source(self) -> KpiSource | InputSource:
        return _kpi_source(self.kpi)


class Band(_Strict):
    from_: Rate = Field(alias="from")
    to: Number | None = None
    share: Rate

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RiskCorridor(_Term):
    kind: Literal["risk_corridor"]
    actual: Param
    target: Param
    bands: list[Band] = Field(min_length=1, max_length=MAX_LIST)


Term = Annotated[SharedSavings | KpiIncentive | SlaCredit | RiskCorridor, Field(discriminator="kind")]
TERM_KINDS = ("shared_savings", "kpi_incentive", "sla_credit", "risk_corridor")


class ContractCaps(_Strict):
    max_reward: Amount | None = None
    max_penalty: Amount | None = None


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


class Contract(_Strict):
    id: Identifier
    name: DisplayName
    health_system: Identifier
    vendor: Identifier
    facilities: list[FacilityId] = Field(min_length=1, max_length=MAX_FACILITIES)
    currency: str
    timezone: Annotated[str, BeforeValidator(_zone)]
    start: date
    end: date
    period: PeriodKind
    runout_days: int = Field(ge=0, le=3650)
    # `declared`: a feed is complete only through what `feed.complete` declared; `runout`: feeds are
    # taken as complete once the period's run-out has passed (docs/settlement.md).
    data_completeness: Literal["declared", "runout"] = "declared"
    fees: dict[FeeName, Amount] = Field(default_factory=dict)
    terms: list[Term] = Field(min_length=1, max_length=MAX_LIST)
    caps: ContractCaps | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if code not in MINOR_UNITS:
            raise ValueError(f"unsupported currency {code!r}; expected an ISO 4217 code such as USD or EUR")
        return code

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ContractInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors


def parse_contract(document: Any, *, path_id: str | None = None) -> Contract:
    """The contract, or ContractInvalid with every error found (shape first, then the rules)."""
    try:
        contract = Contract.model_validate(document, strict=False)
    except ValidationError as exc:
        raise ContractInvalid(_field_errors(exc)) from exc
    errors = list(_rule_errors(contract))
    if path_id is not None and contract.id != path_id:
        errors.insert(
            0, FieldError("$.id", f"must equal the contract id in the path ({path_id!r})", "id_mismatch")
        )
    if errors:
        raise ContractInvalid(errors)
    return contract


def load_contract(document: Any) -> Contract:
    """A stored contract: its rules were checked when it was written, so only its shape is read here —
    a rule added since must not make a stored contract unreadable (it is refused at its next write)."""
    return Contract.model_validate(document, strict=False)


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: list[int | str] = [
            p
            for p in err["loc"]
            if not (isinstance(p, str) and p.startswith("source:")) and p not in TERM_KINDS
        ]
        loc = ["from" if part == "from_" else part for part in loc]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            if (err.get("ctx") or {}).get("discriminator") == "'kind'":
                loc, message = (
                    [*loc, "kind"],
                    f"unknown or missing term kind; expected one of: {', '.join(TERM_KINDS)}",
                )
            else:
                message = _SOURCE_HINT
        errors.append(FieldError(json_path(loc), message, err["type"]))
    return errors


def _rule_errors(contract: Contract) -> list[FieldError]:
    """Rules across fields: each error at the path of the value to change."""
    errors: list[FieldError] = []

    def error(path: str, message: str, code: str = "contract_rule") -> None:
        errors.append(FieldError(path, message, code))

    if contract.vendor == contract.health_system:
        error("$.vendor", "the vendor must be another tenant than the health system")
    if len(set(contract.facilities)) != len(contract.facilities):
        error("$.facilities", "facilities must not repeat")
    for name in ("start", "end"):
        if not EARLIEST_DATE <= getattr(contract, name) <= LATEST_DATE:
            error(f"$.{name}", f"must be a date from {EARLIEST_DATE} to {LATEST_DATE}", "date_range")
    if contract.end < contract.start:
        error("$.end", "must not be before start")
    seen: set[str] = set()
    for index, term in enumerate(contract.terms):
        at = f"$.terms[{index}]"
        if term.id in seen:
            error(f"{at}.id", f"term id {term.id!r} is used twice")
        seen.add(term.id)
        _term_rules(term, contract, at, error)
    return errors


def _term_rules(term: Term, contract: Contract, at: str, error: Any) -> None:
    match term:
        case SharedSavings():
            _shared_savings_rules(term, at, error)
        case KpiIncentive():
            _incentive_rules(term, at, error)
        case SlaCredit():
            _sla_rules(term, contract, at, error)
        case RiskCorridor():
            _corridor_rules(term, at, error)


def _shared_savings_rules(term: SharedSavings, at: str, error: Any) -> None:
    if isinstance(term.benchmark, Decimal) and term.benchmark <= 0:
        error(f"{at}.benchmark", "the benchmark must be positive (savings are a share of it)")
    if term.quality_gate is not None and term.quality_score is None:
        error(f"{at}.quality_gate", "a quality gate needs a quality_score to compare")
    if term.min_loss_rate is not None and term.loss_rate is None:
        error(
            f"{at}.min_loss_rate", "a minimum loss rate needs a loss_rate (the term is one-sided without it)"
        )
    if isinstance(term.loss_rate, OneMinusFinalRate):
        bounds = term.loss_rate.one_minus_final_savings_rate
        if bounds.min > bounds.max:
            error(f"{at}.loss_rate.one_minus_final_savings_rate.min", "must not exceed max")
    if term.loss_caps and term.loss_rate is None:
        error(f"{at}.loss_caps", "loss caps need a loss_rate (the term is one-sided without it)")


def _incentive_rules(term: KpiIncentive, at: str, error: Any) -> None:
    source = term.source
    if term.min_denominator is not None and not (
        isinstance(source, KpiSource) and source.kpi not in KPIS_WITHOUT_DENOMINATOR
    ):
        what = source.kpi if isinstance(source, KpiSource) else f"input {source.input!r}"
        error(f"{at}.min_denominator", f"{what} has no denominator to compare with a minimum")
    if term.curve == "tiers":
        _tier_rules(term, at, error)
    else:
        _linear_rules(term, at, error)


def _tier_rules(term: KpiIncentive, at: str, error: Any) -> None:
    if not term.tiers:
        error(f"{at}.tiers", 'curve "tiers" needs a non-empty list of {"threshold", "amount"}')
        return
    higher = term.direction == "higher_is_better"
    for i in range(1, len(term.tiers)):
        before, now = term.tiers[i - 1], term.tiers[i]
        if now.amount < before.amount:  # negative amounts are penalties
            error(
                f"{at}.tiers[{i}].amount",
                "must not be less than the previous tier's: a better KPI must never pay less",
            )
    for i in range(1, len(term.tiers)):
        before_threshold, threshold = term.tiers[i - 1].threshold, term.tiers[i].threshold
        if (threshold <= before_threshold) if higher else (threshold >= before_threshold):
            order = "ascending" if higher else "descending"
            error(
                f"{at}.tiers[{i}].threshold",
                f"tiers out of order: thresholds of a {term.direction} KPI must be strictly {order}",
            )


def _linear_rules(term: KpiIncentive, at: str, error: Any) -> None:
    higher = term.direction == "higher_is_better"
    if term.tiers is not None:
        error(f"{at}.tiers", 'tiers are only used with curve "tiers"')
    for name in ("baseline", "target"):
        if getattr(term, name) is None:
            error(f"{at}.{name}", 'required for curve "linear"')
    if term.floor is None and not (isinstance(term.max_penalty, Decimal) and term.max_penalty == 0):
        error(f"{at}.floor", "a penalty (max_penalty) needs a floor where it reaches its maximum")
    baseline, target, floor = term.baseline, term.target, term.floor
    if not isinstance(baseline, Decimal):
        return
    if isinstance(target, Decimal) and ((target <= baseline) if higher else (target >= baseline)):
        word = "above" if higher else "below"
        error(f"{at}.target", f"for a {term.direction} KPI the target must be {word} the baseline")
    if isinstance(floor, Decimal) and ((floor >= baseline) if higher else (floor <= baseline)):
        word = "below" if higher else "above"
        error(f"{at}.floor", f"for a {term.direction} KPI the floor must be {word} the baseline")


def _sla_rules(term: SlaCredit, contract: Contract, at: str, error: Any) -> None:
    if term.fee not in contract.fees:
        known = ", ".join(sorted(contract.fees)) or "none defined"
        error(f"{at}.fee", f"fee {term.fee!r} is not a key of the contract's fees ({known})")
    for i in range(1, len(term.tiers)):
        if term.tiers[i].below >= term.tiers[i - 1].below:
            error(
                f"{at}.tiers[{i}].below",
                "tiers out of order: each tier's `below` must be lower than the last",
            )


def _corridor_rules(term: RiskCorridor, at: str, error: Any) -> None:
    if isinstance(term.target, Decimal) and term.target <= 0:
        error(f"{at}.target", "the target must be positive (deviation is relative to it)")
    for i, band in enumerate(term.bands):
        if band.to is not None and band.to <= band.from_:
            error(f"{at}.bands[{i}].to", "must be above `from`")
        if band.to is None and i != len(term.bands) - 1:
            error(f"{at}.bands[{i}].to", "only the last band may be open-ended")
        if i and (previous := term.bands[i - 1].to) is not None and band.from_ < previous:
            error(
                f"{at}.bands[{i}].from", "bands out of order: must start at or after the previous band's `to`"
            )


class InputsInvalid(ContractInvalid):
    """Period inputs that are not a map of names to decimal strings."""


_INPUT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def parse_inputs(document: Any) -> dict[str, Decimal]:
    """`{"benchmark": "62500000.00", ...}`: names as value sources use them, values decimal strings."""
    if not isinstance(document, dict):
        raise InputsInvalid([FieldError("$", 'must be an object such as {"benchmark": "1000.00"}', "type")])
    errors, inputs = [], {}
    for name, value in document.items():
        if not _INPUT_NAME.match(name):
            errors.append(FieldError(json_path([name]), "input names are lower_snake_case", "input_name"))
            continue
        try:
            inputs[name] = _decimal(value)
        except ValueError as exc:
            errors.append(FieldError(json_path([name]), str(exc), "decimal"))
    if errors:
        raise InputsInvalid(errors)
    return inputs
