"""Domain exceptions: the web layer maps them onto 4xx answers."""

from __future__ import annotations


class MatcherError(Exception):
    """Base class for errors a caller can act on."""

    status = 400


class NotFound(MatcherError):
    """No such record, or one the caller may not see."""

    status = 404


class Forbidden(MatcherError):
    """The caller may see the record but not act on it."""

    status = 403


class ValidationFailed(MatcherError):
    """Input failed validation; ``errors`` maps field names to messages."""

    status = 422

    def __init__(self, errors: dict[str, str], message: str = "输入有误 / invalid input"):
        super().__init__(message)
        self.errors = errors


class Conflict(MatcherError):
    """The request conflicts with the current state (e.g. a forbidden transition)."""

    status = 409


class IndexStale(MatcherError):
    """A saved index does not agree with the database."""

    status = 500
