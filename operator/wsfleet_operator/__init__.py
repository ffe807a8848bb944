"""The wsfleet operator: a kopf operator for the ``WsFleet`` custom resource (wsfleet.io).

Importing the package registers the kopf handlers, so ``kopf run --standalone -m wsfleet_operator``
runs it; ``python -m wsfleet_operator`` does the same with the flags a deployment wants.
"""

from __future__ import annotations

from . import handlers

__all__ = ["handlers"]
