"""API errors are rendered by the app's one renderer (:mod:`web.errors`); names kept here for the API."""

from __future__ import annotations

from matcher.errors import LABELS, field_errors
from web.errors import API_MESSAGES as MESSAGES
from web.errors import ApiError, handle_api, handle_domain, handle_http, handle_unexpected

__all__ = ["LABELS", "MESSAGES", "ApiError", "field_errors", "handle_api", "handle_domain",
           "handle_http", "handle_unexpected"]
