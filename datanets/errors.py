"""The one error type of Datanet workflows: a message for people and an HTTP status."""


class DatanetError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
