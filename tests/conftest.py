"""Shared fixtures. Tests import the *installed* package (``python -P``), as users do."""
