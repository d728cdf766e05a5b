"""Dagster wiring and the ``linernotes`` command line."""
