"""fediverse-net: a federated community server for members, groups and meetups."""

__version__ = "0.1.0"
