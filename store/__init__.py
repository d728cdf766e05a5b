"""Where linernotes keeps its state: the data directory, the DuckDB ledger, object storage."""
