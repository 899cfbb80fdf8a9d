"""Example aigi-harness plugin package."""

__version__ = "0.1.0"
