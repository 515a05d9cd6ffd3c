"""Errors raised by services for people (forms, CLI): the message is shown as is."""

from __future__ import annotations


class ServiceError(Exception):
    """A request that cannot be done, with a message fit for the person who asked."""


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Forbidden(ServiceError):
    pass
