"""A/B test statistics (issue 16): the figures shown per variant and the always-valid test behind an automatic
winner. `stats` is pure arithmetic on counts — no models, no database — so the journey wiring (variants on send
steps, assignment, the beat task that picks a winner) builds on it separately. See docs/experiments.md.
"""
