"""Segments: the condition language (conditions.py; its leaf kinds are registered in registry.py) and
live membership (services.py)."""
