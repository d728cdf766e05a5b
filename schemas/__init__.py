"""Data contracts (pydantic v2). Anything that drives a decision is frozen and forbids extra fields."""
