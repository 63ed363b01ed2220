"""Keywords in inbound SMS/WhatsApp messages: STOP, START, HELP (English and Turkish) and the
workspace's own KeywordRule rows.

A message matches a keyword only when the whole message, trimmed, is that keyword. Matching is
case- and accent-insensitive and folds Turkish letters, so "İPTAL", "iptal", "ıptal" and "IPTAL"
are one keyword, as are "Başla" and "BASLA". KeywordRule.keyword is stored folded.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.db.models import Q

from channels.models import KeywordRule

Action = KeywordRule.Action

# Twilio's standard opt-out/opt-in/help words, plus their Turkish counterparts.
BUILTIN_KEYWORDS = {
    **dict.fromkeys(("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke",
                     "iptal", "dur"), Action.OPT_OUT),
    **dict.fromkeys(("start", "unstop", "basla"), Action.OPT_IN),
    **dict.fromkeys(("help", "info", "yardim"), Action.HELP),
}
TURKISH_KEYWORDS = frozenset({"iptal", "dur", "basla", "yardim"})

DEFAULT_REPLIES = {
    ("en", Action.OPT_OUT): "You have been unsubscribed and will receive no more messages. Reply START to resubscribe.",
    ("en", Action.OPT_IN): "You have been resubscribed. Reply STOP to unsubscribe.",
    ("en", Action.HELP): "Reply STOP to unsubscribe, START to resubscribe.",
    ("tr", Action.OPT_OUT): ("Aboneliğiniz iptal edildi, artık mesaj almayacaksınız. "
                             "Yeniden abone olmak için BASLA yazın."),
    ("tr", Action.OPT_IN): "Aboneliğiniz yeniden başlatıldı. Ayrılmak için IPTAL yazın.",
    ("tr", Action.HELP): "Abonelikten çıkmak için IPTAL, yeniden abone olmak için BASLA yazın.",
}
# Config settings that replace the default reply of a built-in action.
REPLY_SETTINGS = {Action.OPT_OUT: "opt_out_reply", Action.OPT_IN: "opt_in_reply", Action.HELP: "help_text"}

_TURKISH_I = str.maketrans({"İ": "i", "I": "i", "ı": "i"})
_TRAILING = " \t\r\n.!?"
MAX_KEYWORD_LENGTH = 50


def fold(text: str) -> str:
    """Lower-case, accent-free form of `text` (Turkish İ/ı/I/i all become i, ş→s, ç→c, ğ→g...)."""
    text = (text or "").translate(_TURKISH_I).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold_keyword(text: str) -> str:
    """How a message (or a KeywordRule keyword) is compared: folded, trimmed, inner spaces single,
    a trailing "." or "!" ignored."""
    return " ".join(fold(text).strip(_TRAILING).split())


@dataclass(frozen=True)
class KeywordMatch:
    keyword: str  # folded
    action: str
    reply: str  # "" sends none
    event_name: str = ""
    rule: KeywordRule | None = None


def default_reply(config, action: str, keyword: str) -> str:
    setting = REPLY_SETTINGS.get(action)
    if setting and (config.settings or {}).get(setting):
        return config.settings[setting]
    language = "tr" if keyword in TURKISH_KEYWORDS else "en"
    return DEFAULT_REPLIES.get((language, action), "")


def _rule_for(workspace, config, keyword: str) -> KeywordRule | None:
    """The config's own rule for the keyword, else the workspace-wide one. Rows are few, so they
    are compared folded in Python: a row saved unfolded still matches."""
    rules = KeywordRule.objects.for_workspace(workspace).filter(
        Q(channel_config__isnull=True) | Q(channel_config=config), active=True)
    matching = [rule for rule in rules if fold_keyword(rule.keyword) == keyword]
    matching.sort(key=lambda rule: rule.channel_config_id is None)
    return matching[0] if matching else None


def match(workspace, config, text: str) -> KeywordMatch | None:
    """What the message `text` received on `config` asks for, or None when it is no keyword."""
    keyword = fold_keyword(text)
    if not keyword or len(keyword) > MAX_KEYWORD_LENGTH:
        return None
    rule = _rule_for(workspace, config, keyword)
    builtin = BUILTIN_KEYWORDS.get(keyword)
    if builtin is not None:
        # Opt-out/opt-in/help words keep their meaning whatever a row says; a row only changes
        # the reply (empty: none) and may add an event.
        reply = rule.reply if rule is not None else default_reply(config, builtin, keyword)
        return KeywordMatch(keyword, builtin, reply, rule.event_name if rule else "", rule)
    if rule is None:
        return None
    return KeywordMatch(keyword, rule.action, rule.reply, rule.event_name, rule)
