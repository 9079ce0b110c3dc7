"""The MSSP one-sided MSR scale reproduces the points CMS published
(tests/data/golden/mssp_msr_scale.json)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlement.domain.mssp import one_sided_msr
from tests.support.data import golden

GOLDEN = golden("mssp_msr_scale.json")


@pytest.mark.parametrize(("population", "percent"), sorted(GOLDEN["published_points_percent"].items()))
def test_published_points(population: str, percent: str) -> None:
    rate = one_sided_msr(Decimal(population))
    assert rate is not None
    assert (rate * 100).quantize(Decimal("0.0001")) == Decimal(percent)


@pytest.mark.parametrize(("low", "high", "at_low", "at_high"), GOLDEN["bands"])
def test_each_band_runs_from_its_low_end_to_its_top(low: int, high: int, at_low: str, at_high: str) -> None:
    assert one_sided_msr(Decimal(low)) == Decimal(at_low) / 100
    assert one_sided_msr(Decimal(high)) == Decimal(at_high) / 100


def test_sixty_thousand_and_more_is_two_percent_and_below_five_thousand_has_no_rate() -> None:
    assert one_sided_msr(Decimal(60_000)) == Decimal("0.02")
    assert one_sided_msr(Decimal(1_000_000)) == Decimal("0.02")
    assert one_sided_msr(Decimal(4_999)) is None
