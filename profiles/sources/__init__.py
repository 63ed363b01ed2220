"""Reverse ETL: people and their attributes read on a schedule from a workspace's own database or
warehouse (PostgreSQL, MySQL/MariaDB) and staged through the ingest path (docs/reverse-etl.md).

    models.py      DataSource (connection, query, mapping, schedule, limits), SyncRun (one per run)
    connection.py  the SSRF-checked, read-only, time-limited SQLAlchemy connection; streamed reads
    mapping.py     a row → the identify operation a Track call would stage, or the row's error
    services.py    create/update/delete a source, test, preview, start and run a sync, the beat sweep
    selectors.py   reads for the API and the console
"""
