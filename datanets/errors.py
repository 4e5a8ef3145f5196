"""The one error type of Datanet workflows: a message for people, an HTTP status and, for a limit
that frees with time, how many seconds to wait (Retry-After)."""


class DatanetError(ValueError):
    def __init__(self, message: str, status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
