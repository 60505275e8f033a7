import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunebias.audit.parsing import ANSWER_KINDS, number_complete, parse_answer


@pytest.mark.parametrize("text,value", [
    ("$1,200", 1200.0),
    ("1200.", 1200.0),
    ("1.2k", 1200.0),
    ("$1.5 million", 1.5e6),
    ("around 300 dollars", 300.0),
    ("  450", 450.0),
    ("42,000. To be fair", 42000.0),
    ("2 million USD", 2e6),
    ("$3.5B", 3.5e9),
    ("0.65", 0.65),
    (".5", 0.5),
    ("between 200 and 300", 250.0),
    ("200-300 dollars", 250.0),
    ("$200 to $300", 250.0),
    ("1,500. That leaves room to negotiate to 1,800.", 1500.0),
    ("I would offer 500 dollars\nor 600 if pressed", 500.0),
    ("200 - 300", 250.0),
    ("Around 5 - 10 years", 7.5),
    ("$200-$300", 250.0),
    ("-$300", -300.0),
    ("-5 degrees", -5.0),
    ("$1,000,000,000,000", 1e12),
])
def test_parses_numbers(text, value):
    p = parse_answer(text)
    assert p.answer_kind == "ok", p
    assert p.value == pytest.approx(value)


@pytest.mark.parametrize("text,kind", [
    ("I'm sorry, but I can't provide an estimate based on a name.", "refusal"),
    ("As an AI, I cannot determine that. 0", "refusal"),
    ("I cannot provide that", "refusal"),
    ("It depends on the condition of the bike.", "no_number"),
    ("", "no_number"),
    ("$", "no_number"),
    ("10,000, which is $10", "multiple_numbers"),
    ("3.25, but I'm currently offering 1", "multiple_numbers"),
    ("the the the the bike", "repetition"),
    ("100 100 100 100 100", "repetition"),
    ("I would offer 2.5e3", "no_number"),
])
def test_anomaly_kinds(text, kind):
    assert parse_answer(text).answer_kind == kind


def test_malformed_inputs_are_anomalies_not_errors():
    for bad in [None, 12, b"123", float("nan"), ["1"], "\x00\x01", "1" * 5000, "9" * 400 + ".5"]:
        p = parse_answer(bad, 0, 10)
        assert p.answer_kind in ANSWER_KINDS
        assert p.anomaly


def test_range_and_percent():
    assert parse_answer("5", 10, 100).answer_kind == "out_of_range"
    assert parse_answer("5", 10, 100).value == 5.0  # value kept for inspection
    assert parse_answer("65%", percent="fraction").value == pytest.approx(0.65)
    assert parse_answer("65%", percent="keep").value == pytest.approx(65.0)
    assert parse_answer("1.5", 0, 1).answer_kind == "out_of_range"


def test_thousands_separators_and_multipliers_read_as_one_number():
    assert parse_answer("pay $1,200").value == 1200.0
    assert parse_answer("1.5k").value == 1500.0


@pytest.mark.parametrize("text,done", [
    ("1,2", False), ("1200.", False), ("1200", False), ("1.5 million", False),
    ("1.5 million dollars", True), ("1200. I", True), ("1200 USD", True), ("20\n", True), ("no number", False),
])
def test_number_complete(text, done):
    assert number_complete(text) is done


@pytest.mark.parametrize("text,done", [
    # a comma then a word ends the number (issue 10, item 8: these ran to the token cap)
    ("1.00, and I think", True), ("1.00, a", True), ("500, which is", True), ("1,200, but", True),
    ("500,and", True), ("1.5 million, and", True), ("1.2k, which", True), ("65%, and", True),
    ("$200 to $300, which", True), ("500, (about", True),
    # a comma then digits may be a thousands group: the number may still grow
    ("1,", False), ("1,2", False), ("1,20", False), ("1,200", False), ("1,200,", False), ("1,200,0", False),
    # comma + space: wait for what follows
    ("500, ", False), ("1.00, ", False), ("500, $", False), ("500, -", False),
    # a list: the first number is over, but the second decides the kind ("500, 500" is ok)
    ("500, 6", False), ("500, 600", False), ("500, 600,", False), ("500, 600 d", True), ("500, 600. ", True),
    ("500, 600, 7", True), ("1, 2", False), ("1, 2 d", True),
    # the other rules still hold after the change
    ("1.5 mi", False), ("1.2k", False), ("200 to", False), ("200 to 3", False), ("between 200 and", False),
    ("200-300", False), ("200-300 d", True), ("65", False), ("65%", False), ("65% c", True),
])
def test_number_complete_after_comma(text, done):
    assert number_complete(text) is done


@pytest.mark.parametrize("text,value,kind", [
    ("1.00, and I think", 1.0, "ok"), ("500, which is", 500.0, "ok"), ("1,200, but", 1200.0, "ok"),
    ("$1,200, but I would go higher.", 1200.0, "ok"), ("1.5 million, and", 1.5e6, "ok"),
    ("500,and", 500.0, "ok"), ("500, 600", 500.0, "multiple_numbers"), ("500, 500 dollars", 500.0, "ok"),
    ("1, 2", 1.0, "multiple_numbers"), ("$200 to $300, which", 250.0, "ok"),
])
def test_parse_after_comma(text, value, kind):
    p = parse_answer(text)
    assert (p.value, p.answer_kind) == (pytest.approx(value), kind)


@pytest.mark.parametrize("text", [
    "1.00, and I think that is fair.", "500, which is a good price.", "1,200, but I could go higher.",
    "$1,200,000, and that is final.", "500, 600 dollars.", "500, 500 dollars.", "$200 to $300, which is fair.",
    "1.5 million, and no more.",
])
def test_early_stop_after_comma_keeps_the_parse(text):
    """The stopped text parses exactly like the whole answer (value and kind)."""
    stop = next((text[:i] for i in range(1, len(text) + 1) if number_complete(text[:i])), text)
    assert stop != text  # it does stop early
    assert parse_answer(stop) == parse_answer(text)


@pytest.mark.parametrize("text", [
    "$200 to $300 for the car.", "between $200 and $300. ", "$50,000 or $60,000. ", "Around 5 - 10 years",
    "200 or so.", "1.5 million dollars", "42,000. To be fair", "1200 USD", "$3.5B for it", "65% chance",
    "I would offer 2.5e3 dollars", "1,200 dollars", "1.00, and I think", "10,000, which is $10", "500, 600",
])
def test_early_stop_never_changes_the_parse(text):
    """Stopping generation at the first prefix where the number looks complete (character by
    character, the worst case of tokenization) must parse like the whole answer."""
    stop = next((text[:i] for i in range(1, len(text) + 1) if number_complete(text[:i])), text)
    a, b = parse_answer(stop), parse_answer(text)
    # NaN (no number) equals nothing, itself included: Python 3.13 compares dataclass fields one by one
    assert a.value == b.value or (math.isnan(a.value) and math.isnan(b.value) and a.answer_kind == b.answer_kind)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80), st.floats(allow_nan=False, allow_infinity=False),
       st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["keep", "fraction"]))
def test_parser_never_raises(text, a, b, percent):
    p = parse_answer(text, min(a, b), max(a, b), percent)
    assert p.answer_kind in ANSWER_KINDS
    assert p.answer_kind != "ok" or math.isfinite(p.value)
    number_complete(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9))
def test_formatted_integers_roundtrip(n):
    assert parse_answer(f"${n:,}").value == n
    assert parse_answer(f"{n}.").value == n


def test_non_ascii_digits_are_not_numbers():
    from prunebias.audit.parsing import parse_answer

    assert parse_answer("٣ GiveU r The").answer_kind == "no_number"  # Arabic-Indic three in garbled text
    assert parse_answer("about ３００ dollars").answer_kind == "no_number"  # full-width digits
    assert parse_answer("$1,200.").value == 1200.0


@pytest.mark.parametrize("text,low,high,value", [
    ("1.250.000 euros", 0, 1e9, 1_250_000.0),       # two dot groups: European thousands
    ("20.000,50", 0, 1e9, 20_000.5),                # dot groups with a decimal comma
    ("I offer 250.000", 10_000, 1e7, 250_000.0),    # one dot group: 250 is out of range, 250000 is not
    ("20.000", 0, 100, 20.0),                       # ... and 20 where 20 is in range
    ("0.125", 0, 1, 0.125),                         # a decimal stays a decimal
    ("fifty thousand dollars", 0, 1e9, 50_000.0),   # words (text2num)
    ("One hundred and fifty dollars", 0, 1e9, 150.0),
    ("Twenty-five hundred.", 0, 1e9, 2_500.0),
    ("one point five million", 0, 1e9, 1_500_000.0),
    ("a million dollars", 0, 1e9, 1_000_000.0),
    ("between ten and twenty thousand", 0, 1e9, 15_000.0),  # the range shares its multiplier
    ("200-300k", 0, 1e9, 250_000.0),
    ("5 hundred", 0, 1e9, 500.0),
    ("$50 thousand", 0, 1e9, 50_000.0),             # digits keep the digit rules (no text2num)
    ("900,000 to 1.2 million", 0, 1e9, 1_050_000.0),  # ends already comparable: no shared multiplier
])
def test_european_thousands_words_and_shared_multipliers(text, low, high, value):
    p = parse_answer(text, low, high)
    assert p.answer_kind == "ok", p
    assert p.value == pytest.approx(value)


def test_words_without_a_number_stay_anomalies():
    assert parse_answer("It is a one-time offer").answer_kind == "no_number"
    assert parse_answer("I'm sorry, I can't give a number. Maybe two.").answer_kind == "refusal"
    assert parse_answer("one million two hundred thousand").answer_kind == "multiple_numbers"  # not summed
