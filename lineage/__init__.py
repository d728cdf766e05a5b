"""Lineage and audit: from song to model and back, and proof that the records were not altered."""
