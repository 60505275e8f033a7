"""Read a number out of a model's answer, and say why when there is none.

Pure functions, no I/O. ``parse_answer`` never raises: every string maps to a
``Parsed`` with a value (or NaN) and an ``answer_kind``:

- ``ok``: a usable number;
- ``refusal``: the model declines before giving any number;
- ``no_number``: text without a number;
- ``multiple_numbers``: two different numbers in the first sentence that are not a
  range ("200-300" / "between 200 and 300" -> midpoint, ``ok``);
- ``repetition``: degenerate output (a word repeated 4+ times in a row);
- ``out_of_range``: a number outside the context's plausible range (value kept).

Accepted forms: "$1,200", "1200.", "1.2k", "$1.5 million", "5 hundred", "around 300
dollars", "65%", ranges "200-300" / "200 to 300" (midpoint); European thousands
"1.250.000" and "20.000,50" (a single dot group, "20.000", is 20 unless only 20000 lies
in the context's range); numbers in words ("fifty thousand dollars", "one point five
million"; read with ``text2num`` when the answer has no digits). Exponent notation such
as "2.5e3" is *not* accepted (``no_number``: models do not write offers that way).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from text_to_num import alpha2digit

ANSWER_KINDS = ("ok", "refusal", "no_number", "multiple_numbers", "repetition", "out_of_range")
ANOMALY_KINDS = ANSWER_KINDS[1:]

_MULT = {
    "hundred": 1e2, "k": 1e3, "thousand": 1e3, "grand": 1e3,
    "m": 1e6, "mm": 1e6, "mil": 1e6, "mln": 1e6, "million": 1e6, "millions": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9, "billions": 1e9,
}
_NUM = re.compile(
    r"(?<![\w.])(?:(?P<sign>-)(?=\$?\d))?\$?\s?"
    r"(?P<num>\d{1,3}(?:\.\d{3})+,\d{1,2}(?![\d,])|\d{1,3}(?:\.\d{3}){2,}(?![\d,]|\.\d)"  # European
    r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\d.,]*[eE][+-]?\d)"
    r"(?:\s?(?P<mult>hundred|thousand|millions?|billions?|grand|mln|mil|mm|bn|k|m|b)(?![A-Za-z]))?"
    r"(?P<pct>\s?%|\s?percent)?",
    re.IGNORECASE | re.ASCII,  # ASCII digits only: "٣" in a garbled answer is not a number
)
_RANGE_SEP = re.compile(r"^\s*(?:-|–|—|to|or)\s*\$?\s*$", re.IGNORECASE)
_BETWEEN = re.compile(r"between\s*$", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:can(?:no|')t|cannot|am unable|'m unable|am not able|'m not able|won'?t|will not|"
    r"do not|don'?t)\s+(?:provide|give|make|answer|estimate|help|determine|assist|predict)|"
    r"i'?m sorry|i apologi[sz]e|as an ai|not appropriate|unable to (?:provide|determine|estimate))",
    re.IGNORECASE,
)
# a word repeated 4+ times in a row; "1,000,000,000,000" (comma-grouped digits) is not
_REPEAT = re.compile(r"\b(\w+)(?:(?!,\d)\W+\1\b){3,}", re.IGNORECASE)
_WAIT_WORDS = tuple(_MULT) + ("percent", "to", "or", "and")
_RANGE_WORD = re.compile(r"^\s*(?:-|–|—|to|or|and)\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|\Z)|\n")


@dataclass(frozen=True)
class Parsed:
    value: float
    answer_kind: str

    @property
    def anomaly(self) -> bool:
        return self.answer_kind != "ok"


_EUROPEAN = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")
_ONE_DOT_GROUP = re.compile(r"[1-9]\d{0,2}\.\d{3}")  # "20.000": 20 or 20000, by the range
# words are read only where the answer starts with them (a number word in the middle of
# free text, "... three ...", is not an offer)
_WORDS_FIRST = re.compile(
    r"^\W*(?:(?:between|about|around|approximately|roughly)\s+)?(?:(?:a|an|one)\s+(?:hundred|thousand|million|billion|point)|two|three|four|five|six|seven|eight|nine|"
    r"ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred)\b", re.IGNORECASE)
_BIG_WORD = re.compile(r"\b(thousand|million|billion)s?\b", re.IGNORECASE)
_A_BIG = re.compile(r"\b(?:a|an)\s+(?=(?:hundred|thousand|million|billion)s?\b)", re.IGNORECASE)


def _number_text(num: str) -> float:
    if _EUROPEAN.fullmatch(num) and (num.count(".") > 1 or "," in num):
        return float(num.replace(".", "").replace(",", "."))
    return float(num.replace(",", ""))


def words_to_digits(text: str) -> str:
    """Numbers written in words as digits ("fifty thousand dollars" -> "50 thousand
    dollars"), with ``text2num``. Thousand, million and billion are kept as words (the
    parser's multipliers), so "one point five million" is 1.5 million and a range shares
    its multiplier ("between ten and twenty thousand"). Only for answers without digits:
    on "$50 thousand" text2num would make two numbers."""
    marked = _BIG_WORD.sub(lambda m: f"qq{m.group(1).lower()}", _A_BIG.sub("one ", text))
    return re.sub(r"qq(thousand|million|billion)", r"\1", alpha2digit(marked, "en", threshold=0))


def _to_float(m: re.Match[str], percent: str) -> float:
    v = _number_text(m.group("num"))
    mult = (m.group("mult") or "").lower()
    v *= _MULT.get(mult, 1.0)
    if m.group("sign"):
        v = -v
    if m.group("pct") and percent == "fraction":
        v /= 100.0
    return v


def _numbers(text: str, percent: str) -> list[tuple[float, int, int, float]]:
    """(value, start, end, multiplier) of each number; the multiplier is 1 without one."""
    out = []
    for m in _NUM.finditer(text):
        try:
            out.append((_to_float(m, percent), m.start(), m.end(), _MULT.get((m.group("mult") or "").lower(), 1.0)))
        except (ValueError, OverflowError):
            continue
    return [n for n in out if math.isfinite(n[0])]


def parse_answer(text: object, low: float = -math.inf, high: float = math.inf, percent: str = "keep") -> Parsed:
    """Parse one answer; never raises (non-strings are ``no_number``)."""
    try:
        return _parse(text, low, high, percent)
    except Exception:  # pragma: no cover - defensive: parsing must never crash a job
        return Parsed(math.nan, "no_number")


def _parse(text: object, low: float, high: float, percent: str) -> Parsed:
    if not isinstance(text, str):
        return Parsed(math.nan, "no_number")
    text = text.replace("\u00a0", " ")
    if not re.search(r"[0-9]", text) and _WORDS_FIRST.match(text):
        text = words_to_digits(text)
    if _REPEAT.search(text):
        return Parsed(math.nan, "repetition")
    nums = _numbers(text, percent)
    first_num_at = nums[0][1] if nums else len(text)
    if _REFUSAL.search(text[:first_num_at]):
        return Parsed(math.nan, "refusal")
    if not nums:
        return Parsed(math.nan, "no_number")
    value, _, end, mult = nums[0]
    sentence_end = _SENTENCE_END.search(text, end)
    limit = sentence_end.start() if sentence_end else len(text)
    same_sentence = [n for n in nums[1:] if n[1] < limit]
    if same_sentence:
        v2, s2, _, mult2 = same_sentence[0]
        between = text[end:s2]
        between_and = _BETWEEN.search(text[: nums[0][1]]) and re.match(r"^\s*and\s*\$?\s*$", between)
        if _RANGE_SEP.match(between) or between_and:
            # "200-300k", "between 10 and 20 thousand": one multiplier for both ends, where
            # only that puts them within a factor of 10 ("900,000 to 1.2 million" is left as it is)
            if mult == 1.0 and mult2 != 1.0 and value < v2 / 10 <= value * mult2 <= 10 * v2:
                value *= mult2
            value = (value + v2) / 2.0
            same_sentence = [n for n in same_sentence[1:] if n[0] != v2]
        if any(abs(n[0] - value) > 1e-12 * max(1.0, abs(value)) for n in same_sentence):
            return Parsed(value, "multiple_numbers")
    if not (low <= value <= high) and _ONE_DOT_GROUP.fullmatch(text[nums[0][1]:nums[0][2]].lstrip("$ ")) \
            and low <= value * 1000 <= high:
        value *= 1000  # "20.000" where only the European reading is a plausible answer
    if not (low <= value <= high):
        return Parsed(value, "out_of_range")
    return Parsed(value, "ok")


def number_complete(text: str) -> bool:
    """True once an answer's first number can no longer grow (for early stopping).

    The number is complete when a sentence end, a newline or a word that is not a
    multiplier ("k", "million", ...) follows it; after "to" / "or" / "and" / "-" it waits
    for a possible second number, so a range is not cut to its lower bound.

    A comma ends the number unless digits follow it directly ("1,2" / "1,200" may be
    thousands groups and still grow): "1.00, and", "1,200, but" and "500,and" are
    complete as soon as a letter follows the comma (and its spaces). "500, " waits for
    the next character; a second number after the comma and its spaces ("500, 600", a
    list) is read to its end first, so the stopped text parses with the same answer kind as the
    whole answer (``multiple_numbers``, or ``ok`` for "500, 500"); a third one is not
    waited for ("500, 600, 7" is complete).
    """
    return _complete(text, in_list=False)


def _complete(text: str, in_list: bool) -> bool:
    m = _NUM.search(text)
    if not m:
        return False
    rest = text[m.end():]
    if re.fullmatch(r"[\d,.]*", rest):  # "1,2" / "1200." may still grow
        return False
    if re.match(r"^\.\s", rest) or rest.startswith("\n") or re.match(r"^[!?;)]", rest):
        return True
    comma = re.match(r"^,(\s*)", rest)
    if comma and (comma.group(1) or re.match(r"^,[A-Za-z]", rest)):  # not "1,2": a thousands group
        tail = rest[comma.end():]
        if re.fullmatch(r"-?\$?\s?\.?", tail):
            return False  # "500, " / "500, $": a word or a second number may follow
        if re.match(r"^-?\$?\s?\.?\d", tail):  # a list "500, 600": decide after its second number
            return in_list or _complete(tail, in_list=True)
        return True  # "1.00, and I think", "1,200, but", "500, (about"
    joiner = _RANGE_WORD.match(rest)
    if joiner:  # "200 to", "200 -", "between 200 and": maybe a range, whose midpoint is the answer
        tail = rest[joiner.end():]
        if re.fullmatch(r"\$?\s*", tail):
            return False  # the second number may still come
        if re.match(r"^\$?\s?[\d.]", tail):
            return _complete(tail, in_list)  # decide after the range's second number
        return True  # "200 or so": not a range
    word = re.match(r"^(\s*)([A-Za-z]+)", rest)
    if word:
        w = word.group(2).lower()
        if word.end() == len(rest):  # the word may still grow ("mi" -> "million", "t" -> "to")
            if not word.group(1) and w == "e":
                return False  # maybe exponent notation, which is rejected once complete
            if any(x.startswith(w) for x in _WAIT_WORDS):
                return False
        if w not in _MULT and w != "percent":
            return True
    return bool(re.match(r"^\s+\S+\s", rest)) and not word
