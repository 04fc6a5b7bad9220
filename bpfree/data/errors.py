"""The one exception raised for every data problem."""


class DataError(Exception):
    """A data file is missing, corrupt or inconsistent; the message says which and how to fix it."""
