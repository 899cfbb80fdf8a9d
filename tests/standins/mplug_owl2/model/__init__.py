"""Stand-in model classes."""

from .tiny import TinyOwl2, save_tiny_owl2  # noqa: F401
