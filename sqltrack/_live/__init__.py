"""A run while its job runs: tracking, the buffered writer, the spool, SIGTERM, system metrics."""
