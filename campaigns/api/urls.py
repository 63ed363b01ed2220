"""App API paths for message content, transactional sends, campaigns and journeys (/v1/...), with or
without a trailing slash.

Included by config/urls.py as `path("v1/", include("campaigns.api.urls"))`.
"""

from django.urls import re_path

from campaigns.api import broadcast_views as b
from campaigns.api import campaign_views as c
from campaigns.api import delivery_rules_views as rules
from campaigns.api import send_views as send
from campaigns.api import simulate_views as sim
from campaigns.api import version_views as ver
from campaigns.api import views as v

TRANSACTIONAL = r"^transactional/(?P<pk>\d+)"
LAYOUT = r"^layouts/(?P<pk>\d+)"
CAMPAIGN = r"^campaigns/(?P<pk>\d+)"


def _actions(viewset, **mapping):
    return viewset.as_view(mapping)


urlpatterns = [
    re_path(r"^send/email/?$", send.SendEmailView.as_view(), name="app-send-email"),
    re_path(r"^send/sms/?$", send.SendSmsView.as_view(), name="app-send-sms"),
    re_path(r"^send/whatsapp/?$", send.SendWhatsAppView.as_view(), name="app-send-whatsapp"),
    re_path(r"^send/push/?$", send.SendPushView.as_view(), name="app-send-push"),
    re_path(r"^send/in_app/?$", send.SendInAppView.as_view(), name="app-send-in-app"),
    re_path(r"^send/inbox_message/?$", send.SendInboxMessageView.as_view(), name="app-send-inbox-message"),
    re_path(r"^transactional/?$", _actions(v.TransactionalViewSet, get="list", post="create"),
            name="app-transactional"),
    re_path(TRANSACTIONAL + r"/?$", _actions(v.TransactionalViewSet, get="retrieve", put="partial_update",
                                             patch="partial_update", delete="destroy"),
            name="app-transactional-detail"),
    re_path(TRANSACTIONAL + r"/preview/?$", v.TransactionalPreviewView.as_view(),
            name="app-transactional-preview"),
    re_path(r"^templates/preview/?$", v.TemplatePreviewView.as_view(), name="app-templates-preview"),
    re_path(r"^snippets/?$", _actions(v.SnippetViewSet, get="list", put="upsert"),
            name="app-snippets"),
    re_path(r"^snippets/(?P<name>[A-Za-z0-9_-]+)/?$", _actions(v.SnippetViewSet, get="retrieve", delete="destroy"),
            name="app-snippet"),
    re_path(r"^layouts/?$", _actions(v.LayoutViewSet, get="list", post="create"), name="app-layouts"),
    re_path(LAYOUT + r"/?$", _actions(v.LayoutViewSet, get="retrieve", put="partial_update", patch="partial_update",
                                      delete="destroy"), name="app-layout"),
    # Campaigns and journeys (campaign_views.py). A person's runs are here, not with the other
    # /customers/{id}/... paths: profiles is a lower layer.
    re_path(r"^campaigns/?$", c.CampaignsView.as_view(), name="app-campaigns"),
    re_path(r"^campaigns/schema/?$", c.CampaignSchemaView.as_view(), name="app-campaigns-schema"),
    re_path(CAMPAIGN + r"/?$", c.CampaignView.as_view(), name="app-campaign"),
    re_path(CAMPAIGN + r"/actions/?$", c.CampaignActionsView.as_view(), name="app-campaign-actions"),
    re_path(CAMPAIGN + r"/activate/?$", c.CampaignActivateView.as_view(), name="app-campaign-activate"),
    re_path(CAMPAIGN + r"/pause/?$", c.CampaignPauseView.as_view(), name="app-campaign-pause"),
    re_path(CAMPAIGN + r"/resume/?$", c.CampaignResumeView.as_view(), name="app-campaign-resume"),
    re_path(CAMPAIGN + r"/stop/?$", c.CampaignStopView.as_view(), name="app-campaign-stop"),
    re_path(CAMPAIGN + r"/journeys/?$", c.CampaignJourneysView.as_view(), name="app-campaign-journeys"),
    re_path(CAMPAIGN + r"/metrics/?$", c.CampaignMetricsView.as_view(), name="app-campaign-metrics"),
    re_path(CAMPAIGN + r"/simulate/?$", sim.CampaignSimulateView.as_view(), name="app-campaign-simulate"),
    # Versions of a campaign and the dry count of a publish (version_views.py).
    re_path(CAMPAIGN + r"/versions/?$", ver.CampaignVersionsView.as_view(), name="app-campaign-versions"),
    re_path(CAMPAIGN + r"/versions/(?P<number>\d+)/?$", ver.CampaignVersionView.as_view(),
            name="app-campaign-version"),
    re_path(CAMPAIGN + r"/versions/(?P<number>\d+)/diff/?$", ver.CampaignVersionDiffView.as_view(),
            name="app-campaign-version-diff"),
    re_path(CAMPAIGN + r"/publish_preview/?$", ver.CampaignPublishPreviewView.as_view(),
            name="app-campaign-publish-preview"),
    re_path(CAMPAIGN + r"/journey_metrics/?$", c.CampaignJourneyMetricsView.as_view(),
            name="app-campaign-journey-metrics"),
    # Broadcast triggers (broadcast_views.py), Customer.io's API-triggered broadcasts.
    re_path(CAMPAIGN + r"/triggers/?$", b.BroadcastTriggersView.as_view(), name="app-campaign-triggers"),
    re_path(CAMPAIGN + r"/triggers/(?P<trigger_id>\d+)/?$", b.BroadcastTriggerView.as_view(),
            name="app-campaign-trigger"),
    re_path(CAMPAIGN + r"/triggers/(?P<trigger_id>\d+)/errors/?$", b.BroadcastTriggerErrorsView.as_view(),
            name="app-campaign-trigger-errors"),
    # The workspace's delivery rules: caps, quiet hours, holdout (delivery_rules_views.py).
    re_path(r"^delivery_rules/?$", rules.DeliveryRulesView.as_view(), name="app-delivery-rules"),
    re_path(r"^journeys/(?P<pk>\d+)/?$", c.JourneyView.as_view(), name="app-journey"),
    re_path(r"^customers/(?P<identifier>.+)/journeys/?$", c.CustomerJourneysView.as_view(),
            name="app-customer-journeys"),
]
