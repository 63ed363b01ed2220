"""Message content: what a delivery renders (docs/templates.md).

Templates (the Liquid sandbox, templating.py), snippets and email layouts, the reusable
message-content record (models.py), its validation and writes (services.py) and rendering
(rendering.py). It sits inside channels, below delivery: transactional messages (campaigns) and,
next, campaign send steps and A/B variants each point at a MessageContent; a Delivery refers to
the content it renders.
"""
