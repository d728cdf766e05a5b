"""Dynamic partitions: one per delivery, per release, per training run (never one per track)."""

import dagster as dg

deliveries = dg.DynamicPartitionsDefinition(name="deliveries")
releases = dg.DynamicPartitionsDefinition(name="releases")
training_runs = dg.DynamicPartitionsDefinition(name="training_runs")
