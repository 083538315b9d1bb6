"""Every Chinese text the user sees, in one place.

Texts are HTML for Telegram's ``parse_mode=HTML`` (terminals get them through
``render.plain``). Placeholders are filled with ``str.format``; whatever comes from the
knowledge base or the user is escaped by the caller before it is put in.
"""

# -- commands (shown in Telegram's command menu) ------------------------------------------

USER_COMMANDS: list[tuple[str, str]] = [
    ("start", "开始使用"),
    ("causes", "借呗被关停的常见原因"),
    ("diagnose", "回答几个问题，帮您排查原因"),
    ("help", "使用帮助"),
    ("forget", "删除我在这里留下的记录"),
]

# -- greeting and help ----------------------------------------------------------------------

START = (
    "您好！我是<b>借呗助手</b> 👋\n\n"
    "我可以帮您弄清楚借呗为什么被停用、关闭，以及接下来该怎么办。\n\n"
    "直接用一句话告诉我您的情况就行，比如“花呗逾期了，借呗也用不了了”。"
    "也可以点下面的常见原因，或者让我问您几个问题，帮您一步步排查。"
)

HELP = (
    "<b>怎么使用借呗助手</b>\n\n"
    "• 直接发一句话描述您的情况，我会告诉您可能的原因和解决方法。\n"
    "• /causes 查看借呗被关停的全部常见原因\n"
    "• /diagnose 回答几个“是/否”问题，帮您排查原因\n"
    "• /start 回到开始\n"
    "• /forget 删除我保存的您的提问、反馈和对话记录\n\n"
    "我是自动回复的机器人，不是支付宝官方客服，也看不到您的账户信息。"
    "请不要发送身份证号、手机号、银行卡号：即使发了，我也会先把号码遮住再保存。"
)

CAUSES = "借呗被关停的常见原因有下面这些，点开最符合您情况的一项，看看原因和解决方法："
CAUSES_LEFT = "除了您说不符合的 {n} 项，借呗被关停的常见原因还有下面这些，点开最符合您情况的一项："

UNKNOWN_COMMAND = "我不认识这个命令。发送 /help 看看我能做什么。"

NUMBERS_NOT_NEEDED = (
    "🔒 请不要在聊天里发身份证号、手机号、银行卡号这类信息：我看不到您的支付宝账户，"
    "也查不了您的借呗，这些号码我已经遮住，没有保存。您只要说说遇到的情况就可以。"
)

EMPTY = "请用一句话告诉我您遇到的情况，比如“借呗突然用不了了”。"

NOT_TEXT = (
    "抱歉，我只能看懂文字消息 🙏\n请用文字描述一下您遇到的情况，比如“借呗突然被关了，是怎么回事”。"
)

ERROR = "抱歉，我这边出了点问题，请稍后再试一次。"

# -- answers --------------------------------------------------------------------------------

SOLUTION_HEADING = "怎么办"
AMBIGUOUS = "您遇到的是哪种情况？点一下最符合的那一项："
NO_MATCH = (
    "抱歉，这个问题我暂时没找到对应的答案，已经记录下来，工作人员会据此完善资料。\n\n"
    "我能解答的是借呗为什么被停用、关闭，以及该怎么处理。"
    "您可以换个说法再问一次，看看下面的常见原因，或者让我问几个问题帮您排查。"
)
FOLLOW_UP = "关于“{title}”，可以这样处理："
FOLLOW_UP_ABOUT = "关于“{title}”："
NOT_MINE = "那可能是下面这些情况，点开看看哪一项更符合："
NOT_MINE_NONE = "那您看看下面其他的常见原因，或者让我问几个问题帮您排查："
NOT_MINE_NOTHING_LEFT = (
    "您已经把我能解释的常见原因都排除了，抱歉没能找到符合您情况的那一个。\n\n"
    "建议您在支付宝App里联系官方客服，查询您账户的具体情况。"
    "也可以让我问几个简单的问题，重新排查一遍。"
)
NOT_MINE_NOTHING_SHOWN = "好的。请用一句话告诉我您遇到的情况，或者让我问几个问题帮您排查。"
OFF_TOPIC = (
    "这个我帮不上忙 😊 我是借呗助手，专门帮您弄清楚借呗为什么被停用、关闭，以及接下来该怎么办。\n\n"
    "如果您的借呗出了问题，直接用一句话告诉我情况就行。"
)
OTHER_PRODUCT = (
    "我是借呗助手，只能解答借呗被停用、关闭的原因和处理方法，{product}的问题我回答不了。"
    "关于{product}，建议您在{where}里查看，或者咨询它的官方客服。\n\n"
    "如果您的借呗也被关停了，可以从下面的常见原因里选一项，或者让我帮您一步步排查。"
)
# Other products users ask about: the surface words (after normalisation), the name to show,
# and where to look instead. Longer surfaces first where one contains another.
OTHER_PRODUCTS: list[tuple[tuple[str, ...], str, str]] = [
    (("花呗", "花贝", "花唄"), "花呗", "支付宝App的花呗页面"),
    (("备用金",), "备用金", "支付宝App的备用金页面"),
    (("网商贷",), "网商贷", "支付宝App的网商贷页面"),
    (("微信分付", "分付"), "微信分付", "微信"),
    (("微粒贷",), "微粒贷", "微信或手机QQ"),
    (("京东白条", "白条"), "京东白条", "京东App"),
    (("京东金条", "金条"), "京东金条", "京东App"),
    (("美团月付", "美团借钱", "美团生活费"), "美团的借款产品", "美团App"),
    (("抖音月付", "放心借"), "抖音的借款产品", "抖音App"),
    (("度小满", "有钱花"), "度小满", "度小满App"),
    (("信用卡",), "信用卡", "发卡银行的App"),
]
ENTRY_GONE = "这条内容已经不存在了，请看看下面的其他常见原因。"
STALE_BUTTON = "这个按钮已经失效了。请重新描述您的情况，或者从常见原因里选一项。"
FEEDBACK_THANKS = "谢谢您的反馈！很高兴能帮上忙 😊"
FEEDBACK_SORRY = (
    "谢谢您的反馈，抱歉没能帮上忙。您可以换个说法描述一下情况，或者让我问几个问题帮您排查。"
)
FEEDBACK_DONE = "✅ 已收到您的反馈，谢谢！"

# -- /forget -------------------------------------------------------------------------------

FORGET_CONFIRM = (
    "要删除我保存的与您有关的记录吗？\n\n"
    "包括：您发过的提问（号码已遮住）、您点过的“有帮助/没帮助”和“这不是我的情况”，"
    "以及对话记录（上次聊到的原因、按钮背后的回答、进行中的排查）。"
    "删除后无法恢复，之前消息下的按钮也会失效。\n\n"
    "不删除的话，这些记录也只保存 {days} 天，到期自动删除。"
)
FORGET_CANCELLED = "好的，什么都没有删除。"
FORGET_FAILED = "抱歉，这次没能删除您的记录，请过一会儿再发 /forget 试一次。"
FORGET_DONE = (
    "🗑 已删除保存的与您有关的记录：\n{lines}\n\n"
    "之后的新提问会照常保存 {days} 天，您随时可以再发 /forget 删除。"
)
FORGET_LINES = {
    "questions": "• 提问 {n} 条",
    "feedback": "• “有帮助/没帮助” {n} 条",
    "suggestions": "• 您对回答的纠正（如“这不是我的情况”）{n} 条",
}
FORGET_STATE = "• 对话记录（上次聊到的原因、按钮背后的回答、进行中的排查）"


def forget_done(deleted: dict[str, int], days: int) -> str:
    """What /forget deleted, table by table (a table that does not exist is not named)."""
    lines = [line.format(n=deleted[t]) for t, line in FORGET_LINES.items() if t in deleted]
    lines.append(FORGET_STATE)
    return FORGET_DONE.format(lines="\n".join(lines), days=days)


# -- guided diagnosis -----------------------------------------------------------------------

DIAG_INTRO = "我来问您几个简单的问题（最多 {max} 个），根据您的回答帮您缩小范围。"
DIAG_QUESTION = "<b>问题 {n}</b>\n{text}"
DIAG_LEADING = "到目前为止，您的回答比较符合：{title}"
DIAG_RESULT = "排查完成。"
DIAG_CLEAR = "根据您的回答，最可能的原因是：<b>{title}</b>\n{confidence}"
DIAG_CONFIDENCE = {
    "high": "把握：比较大。您的回答和这个原因很吻合。",
    "medium": "把握：中等。您的回答比较符合这个原因，但还不能确定。",
    "low": "把握：不大。只是比其他原因更符合一些，请对照说明看看。",
}
DIAG_SEVERAL = (
    "根据您的回答，下面几个原因都有可能，还分不出哪一个更可能：\n{titles}\n\n"
    "请点开看看哪一个更符合您的情况。"
)
DIAG_NONE = "根据您的回答，还没有哪一个原因明显更可能：{why}。"
DIAG_NONE_WHY = {
    "no": "问到的情况您都回答了“否”",
    "unsure": "问到的情况您都不太确定",
    "mixed": "问到的情况您回答的都是“否”或“不确定”",
    "yes": "您回答“是”的情况和其他回答放在一起看，没有一致地指向某一个原因",
}
DIAG_MIXED = "有的回答符合、有的回答不符合的原因：{titles}"
DIAG_UNASKED = "这些原因我没有直接问到，还不能排除（不代表更可能）：{titles}"
DIAG_UNSURE = "您回答“不确定”的原因：{titles}"
DIAG_NONE_NEXT = (
    "您可以点开下面的原因对照看看；如果都对不上，建议在支付宝App里联系官方客服，"
    "查询您账户的具体情况。"
)
DIAG_ADVICE = "<b>建议您先这样处理“{title}”</b>"
DIAG_RESULT_MORE = "点下面的按钮，可以查看每个原因的详细说明。"
DIAG_TITLE_LINE = "• {title}"
DIAG_TITLE_SEP = "、"
DIAG_CANCELLED = "好的，已取消排查。您可以随时发送 /diagnose 重新开始，或者直接告诉我您的情况。"
DIAG_ENDED = "这个诊断已结束。想重新排查的话，点下面的按钮或发送 /diagnose。"
DIAG_ANSWERED = "这个问题已经回答过了，请回答下面最新的问题。"

# -- buttons --------------------------------------------------------------------------------

BTN_DIAGNOSE = "🔍 帮我排查原因"
BTN_DIAGNOSE_AGAIN = "🔄 重新排查"
BTN_CAUSES = "📋 查看全部原因"
BTN_NOT_MINE = "🤔 这不是我的情况"
BTN_HELPFUL = "👍 有帮助"
BTN_UNHELPFUL = "👎 没帮助"
BTN_YES = "是"
BTN_NO = "否"
BTN_UNSURE = "不确定"
BTN_CANCEL = "取消排查"
BTN_FORGET_YES = "🗑 确认删除"
BTN_FORGET_NO = "不删了"

# -- terminal chat --------------------------------------------------------------------------

CHAT_BANNER = "（终端对话：输入文字提问，输入数字选择按钮，/quit 退出）"
CHAT_CHOICE_RANGE = "请输入 1 到 {n} 之间的数字。"
CHAT_NO_CHOICES = "现在没有可以选择的按钮，请直接输入文字。"
CHAT_EXPORTED = "已导出到 {path}（{what}）"
CHAT_IMPORT_USAGE = "用法（终端）：/import 文件路径，例如 /import backup.json"
CHAT_IMPORT_UNREADABLE = "读不了文件 {path}：{reason}。未做任何修改。"
