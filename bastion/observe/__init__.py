"""Watching requests: traces, metrics, OpenTelemetry export, logs."""
