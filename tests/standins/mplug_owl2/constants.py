"""The two constants the harness imports from upstream ``mplug_owl2.constants``."""

IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<|image|>"
