"""Prefect tasks: thin wrappers that take references, call :mod:`sen2core`, return small results."""
