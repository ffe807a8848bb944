"""The wsfleet operator: a kopf operator for the ``WsFleet`` custom resource (wsfleet.io).

Importing the package registers the kopf handlers, so ``kopf run --standalone -m wsfleet_operator``
runs it; ``python -m wsfleet_operator`` does the same with the flags a deployment wants.
"""

from __future__ import annotations

from importlib.util import find_spec

MISSING_KOPF = "the operator needs kopf, which is not installed: pip install 'wsfleet[operator]'"

# Without kopf (the optional extra), python -m wsfleet_operator says so in one sentence.
if find_spec("kopf") is not None:
    from . import handlers as handlers
