"""Steward's telemetry out: OpenTelemetry GenAI spans built from committed trace rows by a
worker job (``export``), Prometheus metrics read from the database (``metrics``) and JSON log
lines carrying run, task and trace ids (``logs``). Nothing here runs on a run's hot path."""
