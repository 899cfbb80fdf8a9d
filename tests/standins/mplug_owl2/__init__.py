"""Stand-in for upstream ``mplug_owl2`` (see ``tests/standins/README.md``)."""
