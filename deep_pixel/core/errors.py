"""The one exception type of the engine.

Every failure a user can cause is raised as :class:`DeepPixelError` with a message that names the
problem and, where there is one, the fix. Adapters (Processing, command line) show it unchanged.
"""


class DeepPixelError(Exception):
    """A problem with the user's input or environment, explained in words."""


class Cancelled(DeepPixelError):
    """The user asked to stop; partial outputs have been removed."""

    def __init__(self, message: str = "Cancelled by the user; no output was written."):
        super().__init__(message)


class Terminated(Cancelled):
    """A termination signal (SIGTERM: a scheduler, a container stop, a closed terminal) stopped the run.

    It acts like cancel (partial outputs removed), except that Train Model keeps its checkpoint of the
    best epoch so far, so the same command can go on from it.
    """

    def __init__(self, message: str = "Stopped by a termination signal (SIGTERM); no output was written."):
        super().__init__(message)
