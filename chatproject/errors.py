"""Domain errors: what the services raise when a rule says no.

Services never raise HTTP errors; each domain error carries the status the API
answers with, and `chatproject.exceptions.api_exception_handler` maps them in one
place. The agent tools and the MCP server turn them into tool results instead.
"""


class DomainError(Exception):
    status_code = 400
    default_detail = "The request was not valid."

    def __init__(self, detail=None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class NotFound(DomainError):
    status_code = 404
    default_detail = "Not found."


class Conflict(DomainError):
    status_code = 409
    default_detail = "The request conflicts with the current state."


class Unprocessable(DomainError):
    status_code = 422
    default_detail = "The request cannot be applied."


class UpstreamFailed(DomainError):
    status_code = 502
    default_detail = "A service this request depends on failed."


class Unavailable(DomainError):
    status_code = 503
    default_detail = "A service this request depends on is unavailable; try again."
