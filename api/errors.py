"""Domain errors of the API. They become HTTP responses in exactly one place (api.app)."""

from __future__ import annotations


class ApiError(Exception):
    """An error a client sees: HTTP status, stable machine code and a readable message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "invalid_parameter") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


class BackendTimeout(Exception):
    """A backend query did not finish in time (becomes 504)."""


class BackendUnavailable(Exception):
    """The backend cannot answer right now: no build yet, throttled (becomes 503)."""
