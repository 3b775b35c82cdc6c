"""Ids are UUIDv7 (opaque, time-ordered); money is exact (Decimal at the edges, integer minor units inside)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.ids import is_id, new_id
from core.money import DECIMALS, MAX_AMOUNT, BadAmount, format_amount, format_minor, from_minor, parse_amount, to_minor

HEX32 = re.compile(r"[0-9a-f]{32}")
MS_2026 = 1_795_000_000_000
CURRENCIES = st.sampled_from(sorted(DECIMALS))


def ids_at(ms: int, count: int = 1) -> list[str]:
    """Ids minted while the wall clock reads `ms` milliseconds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("core.ids.time.time_ns", lambda: ms * 1_000_000 + 123_456)
        return [new_id() for _ in range(count)]


# -- ids ----------------------------------------------------------------------------------------


def test_ids_are_32_hex_chars_version_7_rfc_variant() -> None:
    for value in (new_id() for _ in range(500)):
        assert HEX32.fullmatch(value)
        assert is_id(value)
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_are_unique_within_one_millisecond() -> None:
    minted = ids_at(MS_2026, 5000)

    assert len(set(minted)) == 5000
    assert all(int(value[:12], 16) == MS_2026 for value in minted)


@given(earlier=st.integers(0, 2**48 - 2), gap=st.integers(1, 10**9))
def test_ids_sort_by_the_millisecond_they_were_minted(earlier: int, gap: int) -> None:
    later = min(earlier + gap, 2**48 - 1)

    [first] = ids_at(earlier)
    [second] = ids_at(later)

    assert first < second
    assert int(first[:12], 16) == earlier
    assert int(second[:12], 16) == later
    assert uuid.UUID(hex=first).version == uuid.UUID(hex=second).version == 7


def test_ids_minted_now_sort_after_ids_minted_a_millisecond_earlier() -> None:
    [past] = ids_at(MS_2026 - 1)
    now = new_id()

    assert past < now


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0" * 31,
        "0" * 33,
        "G" * 32,
        "A" * 32,
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef-123456789abcdef",
        " " + "0" * 31,
    ],
)
def test_is_id_rejects_what_is_not_an_id(text: str) -> None:
    assert not is_id(text)


# -- money --------------------------------------------------------------------------------------


@st.composite
def valid_minor(draw: st.DrawFn) -> tuple[str, int]:
    currency = draw(CURRENCIES)
    units = draw(st.integers(1, int(MAX_AMOUNT.scaleb(DECIMALS[currency]))))
    return currency, units


@given(valid_minor())
@example(("USD", 1))
@example(("USDC", 1))
@example(("USD", 100_000_000_000))
@example(("USDC", 1_000_000_000_000_000))
def test_minor_units_round_trip_exactly_through_text(case: tuple[str, int]) -> None:
    currency, units = case

    amount = from_minor(units, currency)
    text = format_amount(amount)
    parsed = parse_amount(text, currency)

    assert parsed == amount
    assert to_minor(parsed, currency) == units
    assert format_minor(units, currency) == text


@given(valid_minor(), st.sampled_from(["plain", "zeros", "int", "float", "decimal"]))
def test_every_spelling_of_a_valid_amount_parses_to_the_same_units(case: tuple[str, int], spelling: str) -> None:
    currency, units = case
    amount = from_minor(units, currency)
    value: object = {
        "plain": f"{amount:f}",
        "zeros": f"00{amount:f}000" if "." in f"{amount:f}" else f"00{amount:f}.000",
        "int": int(amount) if amount == int(amount) else f"{amount:f}",
        "float": float(amount) if Decimal(repr(float(amount))) == amount else f"{amount:f}",
        "decimal": amount,
    }[spelling]

    assert to_minor(parse_amount(value, currency), currency) == units


@given(st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2, allow_nan=False, allow_infinity=False))
def test_usd_decimals_round_trip_through_minor_units(amount: Decimal) -> None:
    units = to_minor(parse_amount(str(amount), "USD"), "USD")

    assert isinstance(units, int)
    assert from_minor(units, "USD") == amount


@given(st.floats(min_value=0.01, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_json_numbers_are_exact_or_refused(value: float) -> None:
    try:
        amount = parse_amount(value, "USD")
    except BadAmount:
        return
    assert amount == Decimal(repr(value))
    assert to_minor(amount, "USD") == int(Decimal(repr(value)) * 100)


ANYTHING = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.-+eE_ \t", max_size=30),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.binary(max_size=8),
)


@given(ANYTHING, CURRENCIES, st.booleans())
@example("1e999999999999999999", "USDC", False)
@example("-0", "USD", False)
@example("sNaN", "USD", False)
@example(Decimal("sNaN"), "USD", False)
@example(Decimal("-Infinity"), "USD", True)
@example("1" * 5000, "USDC", False)
@example(10**400, "USD", False)
def test_parse_amount_raises_bad_amount_or_returns_an_exact_valid_amount(
    value: object, currency: str, allow_zero: bool
) -> None:
    try:
        amount = parse_amount(value, currency, allow_zero=allow_zero)
    except BadAmount:
        return
    assert isinstance(amount, Decimal)
    assert amount.is_finite()
    assert Decimal(0) <= amount <= MAX_AMOUNT
    assert allow_zero or amount > 0
    assert from_minor(to_minor(amount, currency), currency) == amount


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "abc",
        "1,5",
        "NaN",
        "Infinity",
        "-1",
        "0",
        "0.00",
        "-0.01",
        "1.001",
        "1e-3",
        "1000000000.01",
        "1e10",
        True,
        False,
        None,
        [],
        {},
        1.005,
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        b"12",
    ],
)
def test_invalid_usd_amounts_raise_bad_amount(value: object) -> None:
    with pytest.raises(BadAmount):
        parse_amount(value, "USD")


MONEY_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")


@pytest.mark.parametrize(
    "text",
    [
        "1_000",
        "1_000.00",
        "\u0661\u0660\u0660",  # Arabic-Indic 100
        "\uff11\uff10\uff10",  # fullwidth 100
        "1\u0660",
        "+100",
        " 100",
        "100 ",
        " 100 ",
        "\t100",
        "100\n",
        "1e3",
        "1E-2",
        ".5",
        "5.",
        "1.2.3",
        "0x10",
        "1,000",
        "1 000",
        "Infinity",
    ],
)
def test_an_amount_string_must_be_plain_ascii_digits(text: str) -> None:
    with pytest.raises(BadAmount, match="digits"):
        parse_amount(text, "USD")


@given(st.from_regex(r"[0-9]{1,10}(\.[0-9]{1,6})?", fullmatch=True), CURRENCIES)
def test_a_plain_digit_string_is_refused_only_for_its_value(text: str, currency: str) -> None:
    amount = Decimal(text)
    in_range = 0 < amount <= MAX_AMOUNT and amount == amount.quantize(Decimal(1).scaleb(-DECIMALS[currency]))

    try:
        assert parse_amount(text, currency) == amount
    except BadAmount:
        assert not in_range
    else:
        assert in_range


@given(st.one_of(st.text(), st.text(alphabet="0123456789.-+eE_ \t\n\u0660\u0661\uff11", max_size=12)), CURRENCIES)
def test_a_string_that_is_not_plain_digits_is_never_an_amount(text: str, currency: str) -> None:
    if MONEY_TEXT.fullmatch(text):
        return
    with pytest.raises(BadAmount):
        parse_amount(text, currency)


@pytest.mark.parametrize("value", [10**5000, -(10**5000)], ids=["huge", "huge-negative"])
def test_an_integer_too_long_to_print_is_bad_amount(value: int) -> None:
    """Python refuses str() of ints over 4300 digits with a plain ValueError; the contract is BadAmount."""
    with pytest.raises(BadAmount):
        parse_amount(value, "USD")


def test_zero_is_allowed_only_when_asked() -> None:
    assert parse_amount("0", "USD", allow_zero=True) == 0
    with pytest.raises(BadAmount):
        parse_amount("0", "USD")
    with pytest.raises(BadAmount):
        parse_amount("-0.01", "USD", allow_zero=True)


def test_the_largest_amount_is_accepted_and_one_unit_more_is_not() -> None:
    assert to_minor(parse_amount(str(MAX_AMOUNT), "USDC"), "USDC") == 10**15
    with pytest.raises(BadAmount):
        parse_amount(f"{MAX_AMOUNT}.000001", "USDC")


@given(
    st.one_of(
        st.decimals(min_value=0, max_value=MAX_AMOUNT, allow_nan=False, allow_infinity=False),
        st.builds(
            Decimal, st.sampled_from(["1E+3", "1E+9", "1E-6", "0E-10", "1.000000E+2", "5E-2", "0.000001", "1e2"])
        ),
        valid_minor().map(lambda case: from_minor(case[1], case[0])),
    )
)
def test_format_amount_never_uses_exponent_notation(amount: Decimal) -> None:
    text = format_amount(amount)

    assert re.fullmatch(r"\d+\.\d{2,}", text), text
    assert "e" not in text.lower()
    assert Decimal(text) == amount
    fraction = text.split(".")[1]
    assert len(fraction) == 2 or not fraction.endswith("0")


@pytest.mark.parametrize(
    ("units", "currency", "text"),
    [
        (1_250_000_000, "USDC", "1250.00"),
        (12_345_678, "USDC", "12.345678"),
        (1, "USDC", "0.000001"),
        (1, "USD", "0.01"),
        (4500, "USD", "45.00"),
        (10**11, "USD", "1000000000.00"),
    ],
)
def test_format_minor_examples(units: int, currency: str, text: str) -> None:
    assert format_minor(units, currency) == text
