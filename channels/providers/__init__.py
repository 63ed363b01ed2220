"""Provider adapters: one module per provider kind, each a `Provider` subclass.

`get_provider(config)` builds the adapter for a ChannelConfig; the registry maps ProviderKind to
the class path so importing one provider never imports the others' dependencies.
"""

from importlib import import_module

from channels.models import ProviderKind

REGISTRY = {
    ProviderKind.SMTP: "channels.providers.email.SmtpProvider",
    ProviderKind.ANYMAIL: "channels.providers.email.AnymailProvider",
    ProviderKind.TWILIO: "channels.providers.twilio.TwilioProvider",
    ProviderKind.HTTP_SMS: "channels.providers.http_sms.HttpSmsProvider",
    ProviderKind.WHATSAPP_CLOUD: "channels.providers.whatsapp.WhatsAppCloudProvider",
    ProviderKind.FCM: "channels.providers.push.FcmProvider",
    ProviderKind.APNS: "channels.providers.push.ApnsProvider",
    ProviderKind.WEBHOOK: "channels.providers.webhook.WebhookProvider",
    ProviderKind.INBOX: "channels.providers.inbox.InboxProvider",
    ProviderKind.DEMO: "channels.providers.demo.DemoProvider",
}


def provider_class(kind: str):
    module, _, name = REGISTRY[ProviderKind(kind)].rpartition(".")
    return getattr(import_module(module), name)


def get_provider(config):
    from channels.configs import read_secrets

    return provider_class(config.provider)(config, read_secrets(config))
