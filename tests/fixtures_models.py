"""Model fixtures (owned by the inference part)."""
