"""bot/render.py: plain text for terminals, splitting long replies, callback data limits."""

from __future__ import annotations

import pytest

from bot.render import (
    HONG_KONG,
    MAX_MESSAGE_CHARS,
    SIMPLIFIED,
    TAIWAN,
    Button,
    Reply,
    detect_script,
    esc,
    plain,
    split,
    to_plain_text,
    to_script,
)


def test_plain_strips_tags_unescapes_and_numbers_buttons():
    reply = Reply(
        f"<b>{esc('标题 <1> & 2')}</b>\n\n正文",
        [[Button("是", "u:y"), Button("否", "u:n")], [Button("取消", "u:x")]],
    )
    assert plain(reply) == "标题 <1> & 2\n\n正文\n\n  [1] 是\n  [2] 否\n  [3] 取消"
    assert plain(reply, start=4).endswith("[6] 取消")
    assert plain(Reply("只有文字")) == "只有文字"


def test_esc_escapes_html_but_not_quotes():
    assert esc('<a href="x">&</a>') == '&lt;a href="x"&gt;&amp;&lt;/a&gt;'


def test_callback_data_over_64_bytes_is_refused():
    Button("ok", "u:" + "a" * 62)
    with pytest.raises(ValueError):
        Button("too long", "u:" + "借" * 21)  # 2 + 63 bytes


def test_a_short_reply_is_not_split():
    reply = Reply("短", [[Button("a", "u:c")]], edit=True)
    assert split(reply) == [reply]


def test_long_reply_splits_at_paragraphs_with_buttons_on_the_last_part():
    paragraphs = [f"第{i}段" + "字" * 990 for i in range(5)]  # about 5,000 characters
    reply = Reply("\n\n".join(paragraphs), [[Button("a", "u:c")]], "misuse", 88.0, edit=True)
    parts = split(reply)
    assert len(parts) == 2
    assert all(len(p.text_html) <= MAX_MESSAGE_CHARS for p in parts)
    assert all(p.text_html.startswith("第") for p in parts)  # cut between paragraphs
    assert "\n\n".join(p.text_html for p in parts) == reply.text_html
    assert [bool(p.buttons) for p in parts] == [False, True]
    assert [p.edit for p in parts] == [True, False]
    assert all(p.intent == "misuse" for p in parts)


def test_a_paragraph_longer_than_a_message_is_cut_outside_entities():
    text = "&amp;" * 2000  # 10,000 characters with no paragraph or line break
    parts = split(Reply(text))
    assert all(len(p.text_html) <= MAX_MESSAGE_CHARS for p in parts)
    assert all(p.text_html.startswith("&amp;") and p.text_html.endswith(";") for p in parts)
    assert "".join(p.text_html for p in parts) == text
    assert to_plain_text(parts[0].text_html) == "&" * (len(parts[0].text_html) // 5)


# -- the user's script ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("借唄被關了怎麼辦", TAIWAN),
        ("身份證過期了", TAIWAN),
        ("我嘅借唄用不了", HONG_KONG),
        ("借唄入口裏面冇咗", HONG_KONG),
        ("借呗被关了怎么办", SIMPLIFIED),
        ("你好", None),
        ("12345 ok", None),
        ("借呗\ud800關了", None),  # a lone surrogate, one character of each
    ],
)
def test_detect_script(text, script):
    assert detect_script(text) == script


def test_to_script_converts_text_and_labels_but_not_callback_data():
    reply = Reply("<b>这不是我的情况</b>", [[Button("帮我排查原因", "u:ds")]], "x", 50.0)
    tw = to_script(reply, TAIWAN)
    assert tw.text_html == "<b>這不是我的情況</b>"
    assert tw.buttons == [[Button("幫我排查原因", "u:ds")]]
    assert (tw.intent, tw.score) == ("x", 50.0)
    assert to_script(Reply("账户信息"), HONG_KONG).text_html == "賬户信息"
    assert to_script(Reply("账户信息"), TAIWAN).text_html == "賬戶資訊"
    assert to_script(reply, None) is reply and to_script(reply, SIMPLIFIED) is reply
