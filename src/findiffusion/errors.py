"""Errors that the command line reports as one line with exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a message that says what is wrong and how to fix it."""


class ModelFileError(InputError):
    """A model directory that is missing, corrupted or of an incompatible version."""
