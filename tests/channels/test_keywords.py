"""Keyword matching: whole message, case/accent-insensitive, Turkish i folding, rules per workspace."""

import pytest

from channels.keywords import fold_keyword, match
from channels.models import KeywordRule
from tests.support.factories import ChannelConfigFactory


@pytest.mark.parametrize("text", ["iptal", "İPTAL", "IPTAL", "ıptal", "İptal", "Iptal", "  iptal \n", "IPTAL."])
def test_turkish_i_variants_fold_to_one_keyword(text):
    assert fold_keyword(text) == "iptal"


@pytest.mark.parametrize("text, folded", [
    ("Başla", "basla"), ("BAŞLA", "basla"), ("yardım", "yardim"), ("YARDIM", "yardim"), ("Stop!", "stop"),
    ("ÇĞÖŞÜ", "cgosu"), ("Kampanya  Ekim", "kampanya ekim"), ("Ünsubscribe", "unsubscribe"),
])
def test_folding(text, folded):
    assert fold_keyword(text) == folded


@pytest.fixture
def sms(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", name="sms")


@pytest.mark.django_db
@pytest.mark.parametrize("text, action", [
    ("STOP", "opt_out"), ("stopall", "opt_out"), ("Unsubscribe", "opt_out"), ("cancel", "opt_out"),
    ("END", "opt_out"), ("quit", "opt_out"), ("İPTAL", "opt_out"), ("dur", "opt_out"),
    ("START", "opt_in"), ("unstop", "opt_in"), ("Başla", "opt_in"), ("HELP", "help"), ("Yardım", "help"),
])
def test_builtin_keywords(tenant_a, sms, text, action):
    found = match(tenant_a.workspace, sms, text)
    assert found is not None and found.action == action and found.reply


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["stop please", "please stop", "hello", "", "   ", "stopp", "x" * 60])
def test_only_the_whole_message_is_a_keyword(tenant_a, sms, text):
    assert match(tenant_a.workspace, sms, text) is None


@pytest.mark.django_db
def test_turkish_keywords_get_turkish_default_replies(tenant_a, sms):
    assert "BASLA" in match(tenant_a.workspace, sms, "iptal").reply
    assert "START" in match(tenant_a.workspace, sms, "stop").reply


@pytest.mark.django_db
def test_config_settings_replace_default_replies(tenant_a):
    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio",
                                  settings={"help_text": "Acme: call 0850", "opt_out_reply": "Bye from Acme"})
    assert match(tenant_a.workspace, config, "help").reply == "Acme: call 0850"
    assert match(tenant_a.workspace, config, "YARDIM").reply == "Acme: call 0850"
    assert match(tenant_a.workspace, config, "iptal").reply == "Bye from Acme"


@pytest.mark.django_db
def test_custom_rule_matches_folded_and_unfolded_rows(tenant_a, sms):
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="KAMPANYA", reply="Ekim kampanyası: %20",
                                event_name="campaign_info_requested")
    found = match(tenant_a.workspace, sms, "kampanya")
    assert found.action == "custom" and found.reply == "Ekim kampanyası: %20"
    assert found.event_name == "campaign_info_requested" and found.keyword == "kampanya"


@pytest.mark.django_db
def test_inactive_and_other_workspace_rules_do_not_match(tenant_a, tenant_b, sms):
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="promo", reply="x", active=False)
    KeywordRule.unscoped.create(workspace=tenant_b.workspace, keyword="kampanya", reply="B's reply")
    assert match(tenant_a.workspace, sms, "promo") is None
    assert match(tenant_a.workspace, sms, "kampanya") is None


@pytest.mark.django_db
def test_a_configs_own_rule_wins_over_the_workspace_rule(tenant_a, sms):
    other = ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", name="other")
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="info2", reply="everyone")
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, channel_config=sms, keyword="info2", reply="this number")
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, channel_config=other, keyword="only-other", reply="o")
    assert match(tenant_a.workspace, sms, "INFO2").reply == "this number"
    assert match(tenant_a.workspace, other, "INFO2").reply == "everyone"
    assert match(tenant_a.workspace, sms, "only-other") is None


@pytest.mark.django_db
def test_a_row_for_a_builtin_keyword_changes_the_reply_not_the_action(tenant_a, sms):
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="stop", action="custom", reply="Gone.",
                                event_name="stopped_by_sms")
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="help", reply="")
    found = match(tenant_a.workspace, sms, "STOP")
    assert found.action == "opt_out" and found.reply == "Gone." and found.event_name == "stopped_by_sms"
    assert match(tenant_a.workspace, sms, "HELP").reply == ""  # an empty reply sends none


@pytest.mark.django_db
def test_a_custom_opt_out_synonym(tenant_a, sms):
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="ayril", action="opt_out", reply="Tamam.")
    found = match(tenant_a.workspace, sms, "AYRIL")
    assert found.action == "opt_out" and found.reply == "Tamam."
