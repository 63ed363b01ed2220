"""Segments: the condition language (conditions.py) and live membership (services.py)."""
