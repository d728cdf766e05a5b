"""Attribution-tagged Parquet training shards: writer, manifest verification, torch loader, exposure."""
