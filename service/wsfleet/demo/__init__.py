"""The built-in demo application of ``wsfleet serve``: echo and a rooms chat."""

from wsfleet.demo.app import STATIC_DIR, setup

__all__ = ["STATIC_DIR", "setup"]
