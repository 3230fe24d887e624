"""Prefect flows composing the tasks of :mod:`tasks`."""
