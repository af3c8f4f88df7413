"""The one error type users see: one line naming the file/field and the fix."""


class NeurofxError(Exception):
    """A user-facing error. The CLI prints ``str(err)`` on one line and exits with code 2."""
