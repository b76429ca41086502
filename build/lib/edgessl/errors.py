"""The one exception type that the CLI turns into a one-line message (no traceback)."""


class EdgeSSLError(Exception):
    """A user-facing error: bad input, a missing file, an impossible setting.

    The message must fit on one line and say what is wrong and how to fix it.
    """
