"""Ingestion: wire formats (Track v1/v2, CDP) → validated operations → staged → applied.

Every surface turns its requests into the same operation dicts (see `operations.py`), so the
semantics of identify, track, devices, merges and objects live in one place (`profiles.services`).
"""
