"""App API paths of the messaging layer (included at /v1/), with or without a trailing slash.

Person identifiers and suppressed addresses arrive URL-encoded and may hold "/" once decoded,
so they match `.+` and the fixed suffixes anchor the end (as profiles/api/app_urls.py does).
"""

from django.urls import re_path

from channels.api import views as v

PERSON = r"^customers/(?P<identifier>.+)"

urlpatterns = [
    re_path(r"^channels/?$", v.ChannelsView.as_view(), name="app-channels"),
    re_path(r"^channels/(?P<pk>\d+)/?$", v.ChannelView.as_view(), name="app-channel"),
    re_path(r"^channels/(?P<pk>\d+)/test/?$", v.ChannelTestView.as_view(), name="app-channel-test"),
    re_path(r"^deliveries/?$", v.DeliveriesView.as_view(), name="app-deliveries"),
    re_path(r"^deliveries/(?P<delivery_id>[-\w]+)/?$", v.DeliveryView.as_view(), name="app-delivery"),
    re_path(r"^messages/?$", v.MessagesView.as_view(), name="app-messages"),
    re_path(r"^messages/(?P<delivery_id>[-\w]+)/?$", v.MessageView.as_view(), name="app-message"),
    re_path(r"^topics/?$", v.TopicsView.as_view(), name="app-topics"),
    re_path(r"^topics/(?P<pk>\d+)/?$", v.TopicView.as_view(), name="app-topic"),
    re_path(r"^subscription_topics/?$", v.SubscriptionTopicsView.as_view(), name="app-subscription-topics"),
    re_path(PERSON + r"/subscription_preferences/?$", v.PreferencesView.as_view(),
            name="app-customer-subscription-preferences"),
    re_path(PERSON + r"/inbox_token/?$", v.InboxTokenView.as_view(), name="app-customer-inbox-token"),
    re_path(r"^suppressions/?$", v.SuppressionsView.as_view(), name="app-suppressions"),
    re_path(r"^suppressions/(?P<channel>[a-z_]+)/(?P<address>.+?)/?$", v.SuppressionView.as_view(),
            name="app-suppression"),
    re_path(r"^compliance/consent/?$", v.ConsentExportView.as_view(), name="app-consent-export"),
]
