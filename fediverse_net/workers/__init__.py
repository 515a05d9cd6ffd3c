"""The only loops: inbox processing and delivery, in `serve` or in `fediverse-net worker`."""
