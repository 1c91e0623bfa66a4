"""Where the API's routes live and what every one of them may answer besides success."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

API_PREFIX = "/api/v1"
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for status, description in (
        (401, "No valid bearer token"),
        (403, "The caller's role does not allow it"),
        (404, "No such thing in an org of the caller's"),
        (409, "The state refuses it (too few credits, a paused org, ...)"),
        (413, "The request body is over the size limit"),
        (422, "A malformed request"),
        (429, "Too many requests: try again after Retry-After seconds"),
        (503, "The database cannot be reached right now: retry, with the same idempotency key"),
    )
}


def api_router(tag: str) -> APIRouter:
    """A router of API routes under /api/v1, documented with the errors any route may give."""
    return APIRouter(prefix=API_PREFIX, tags=[tag], responses=ERROR_RESPONSES)
