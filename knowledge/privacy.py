"""Personal numbers out of everything the bot keeps: one mask, applied before storing or logging.

People type their ID, phone or bank card number into the chat "so you can check". ``mask``
replaces each such number with a placeholder and keeps the rest of the sentence, so that a
stored question still reads as a question (``身份证[身份证号]过期了``):

=================  ===========================================================================
``[身份证号]``     mainland resident ID numbers: 18 digits (the last may be X) or the old 15,
                   with a plausible birth date inside
``[手机号]``       mainland mobile numbers (11 digits from 13-19), with or without +86
``[电话号码]``     landlines with an area code (010-12345678, (0571)87654321), and 7-8 digit
                   numbers right after a word such as 电话 / 座机
``[银行卡号]``     other runs of 15-19 digits (bank cards) and of 20 or more (account numbers)
``[邮箱]``         e-mail addresses
=================  ===========================================================================

Digits may be full-width (１３８…) and grouped by spaces or hyphens (138 1234 5678). Numbers
shown half hidden, as Alipay shows account names (138****5678, ab***@163.com), are masked
too: what is left of them is still personal. An Alipay account name is a phone number or an
e-mail address, so it is caught by those two. Shorter numbers (amounts, days, years, the
95188 hotline) are left alone: they are what a question is about.

``mask`` is idempotent and cheap on text without long digit runs or an ``@`` (one regex
search). ``matchable`` is what the matcher reads: the masked text with the placeholders
taken out, so that a masked number is no evidence for anything (a ``[身份证号]`` must not
look like a message about the ID card). The word that only names a number the user gives
("身份证号 440…，借呗为什么用不了", "手机号是 159…。") goes with it: a number given "so you can
check" says nothing about the cause. A number that is the subject of what follows keeps its
word (``身份证[身份证号]过期了`` still reads 身份证过期了).
"""

from __future__ import annotations

import re

ID_NUMBER = "[身份证号]"
MOBILE = "[手机号]"
LANDLINE = "[电话号码]"
CARD = "[银行卡号]"
EMAIL = "[邮箱]"
PLACEHOLDERS = (ID_NUMBER, MOBILE, LANDLINE, CARD, EMAIL)
PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))

_STAR = "*＊"
_SEP = " \u3000\\-－—"
# A quick look for anything worth masking: a digit (or star) run of 5+, or an at sign.
_SUSPECT = re.compile(rf"[\d{_STAR}]{{3}}[\d{_STAR}{_SEP}]{{2}}|[@＠]")
_ASCII_WORD = "A-Za-z0-9Ａ-Ｚａ-ｚ０-９"
_EMAIL = re.compile(
    rf"[{_ASCII_WORD}._%+\-{_STAR}]+[@＠][{_ASCII_WORD}\-]+(?:[.．][{_ASCII_WORD}\-]+)*"
    r"[.．][A-Za-zＡ-Ｚａ-ｚ]{2,}"
)
# A run of digits (or the stars of a half-hidden number), single spaces or hyphens allowed
# between them, an optional +86 in front, an area code in brackets, an X at the end (IDs).
_RUN = re.compile(
    rf"(?<![\d{_STAR}])"
    rf"(?P<area>[(（]\s?0\d{{2,3}}\s?[)）][{_SEP}]?)?"
    rf"(?P<plus>[+＋])?"
    rf"(?P<body>[\d{_STAR}](?:[{_SEP}]?[\d{_STAR}]){{6,}})"
    rf"(?P<x>[XxＸｘ](?![A-Za-zＡ-Ｚａ-ｚ]))?"
    rf"(?![\d{_STAR}])"
)
# A 7-8 digit local number counts as a phone number only right after one of these words.
_PHONE_WORDS = re.compile(r"(?:电话|座机|固话|号码|手机|联系方式|tel|TEL|Tel)\D{0,3}$")
_SPACE = re.compile(r"(\s+)")
# The words that name a number, and a placeholder after them (是 / 为 / a colon between)
# that ends its clause: the word is a label, not part of the question.
_LABELS = (
    "身份证号码|身份证号|身份证|证件号码|证件号|身份号码|手机号码|手机号|手机|电话号码|联系电话|"
    "电话|号码|座机|联系方式|支付宝账号|支付宝账户|支付宝|账号|账户|银行卡号|银行卡|卡号|"
    "储蓄卡|借记卡|电子邮箱|邮箱地址|邮箱|email|e-mail|sfz"
)
_LABELLED = re.compile(
    rf"(?:{_LABELS})\s*(?:是|为|:|：)?\s*(?:{'|'.join(re.escape(p) for p in PLACEHOLDERS)})"
    r"(?=\s*(?:[，,。.!！?？;；、]|\s|$))",
    re.IGNORECASE,
)
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９＊", "0123456789*")


def _plausible_date(year: str, month: str, day: str) -> bool:
    century_ok = len(year) == 2 or year[:2] in ("19", "20")
    return century_ok and 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def _looks_like_id(digits: str) -> bool:
    """An ID number's shape: 6-digit region, birth date, sequence (stars match anything)."""
    if "*" in digits:
        return len(digits) in (15, 18)
    if len(digits) == 18:
        return digits[0] != "0" and _plausible_date(digits[6:10], digits[10:12], digits[12:14])
    if len(digits) == 15:
        return digits[0] != "0" and _plausible_date(digits[6:8], digits[8:10], digits[10:12])
    return False


def _classify(match: re.Match[str], text: str) -> str | None:
    """The placeholder for a digit run, or None to leave it as it is."""
    digits = re.sub(r"[^\d*]", "", match.group("body").translate(_FULL_WIDTH_DIGITS))
    if not sum(c.isdigit() for c in digits) >= 4:
        return None  # "********": a word hidden by the user, not a number
    if match.group("x"):
        return ID_NUMBER if len(digits) in (14, 17) else None
    if match.group("area"):
        return LANDLINE if 7 <= len(digits) <= 8 else None
    mobile = digits
    for prefix in ("0086", "86"):
        if len(digits) == 11 + len(prefix) and digits.startswith(prefix):
            mobile = digits[len(prefix) :]
    if len(mobile) == 11 and mobile[0] == "1" and mobile[1] in "3456789*":
        return MOBILE
    if match.group("plus"):
        return LANDLINE if len(digits) >= 8 else None  # an international number
    if len(digits) in (15, 18) and _looks_like_id(digits):
        return ID_NUMBER
    if len(digits) >= 15:
        return CARD
    if digits[0] == "0" and 10 <= len(digits) <= 12:
        return LANDLINE
    if 7 <= len(digits) <= 8 and _PHONE_WORDS.search(text, 0, match.start()):
        return LANDLINE
    return None


def mask(text: str) -> str:
    """``text`` with every personal number and e-mail address replaced by a placeholder."""
    if not _SUSPECT.search(text):
        return text
    text = _EMAIL.sub(EMAIL, text)

    def replace(match: re.Match[str]) -> str:
        kind = _classify(match, text)
        whole = match.group(0)
        if (kind is None or (kind == CARD and len(whole) > 24)) and _SPACE.search(whole):
            # Two numbers side by side ("13812345678 110101199003071234"), or a number
            # and a count: each part on its own.
            return "".join(mask(part) for part in _SPACE.split(whole))
        return whole if kind is None else kind

    return _RUN.sub(replace, text)


def matchable(text: str) -> str:
    """What the matcher reads: the masked text without its placeholders."""
    masked = mask(text)
    if "[" not in masked:
        return masked
    return PLACEHOLDER_RE.sub("", _LABELLED.sub("", masked))
