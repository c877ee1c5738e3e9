"""Exceptions whose message is meant for the user: the CLI prints them as one line."""


class VdwgenError(Exception):
    """Base of errors a user can act on; the message says what was wrong and what to do."""
