"""Use-cases: the only layer that uses both the database and the protocol code."""
