"""Search space."""
