"""The package version, in a module of its own so that nothing imports the package's
``__init__`` (which lazily exports the public classes) just to read it."""

__version__ = "0.1.0"
