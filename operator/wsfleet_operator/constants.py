"""Names fixed by the operational contract between node, operator and chart.

Channel names, registry keys and the control-message format are not repeated here: they come
from :mod:`wsfleet.contract`, the one module both the node and the operator import (it loads
nothing but the standard library). Ports and mount paths are the chart's side of the contract.
"""

from __future__ import annotations

from typing import Final

from wsfleet import contract

GROUP: Final = "wsfleet.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "wsfleets"
KIND: Final = "WsFleet"
API_VERSION: Final = f"{GROUP}/{VERSION}"

FIELD_MANAGER: Final = "wsfleet-operator"
SENDER_NAME: Final = "wsfleet-operator"

# Labels every owned object carries. The selector uses only NAME and INSTANCE.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
APP_NAME: Final = "wsfleet"
COMPONENT: Final = "node"
MANAGED_BY: Final = "wsfleet-operator"

# The node's ports and paths (contract: "Node process").
WS_PORT: Final = 8080
INTERNAL_PORT: Final = 9100
CONFIG_DIR: Final = "/etc/wsfleet/redis-nodes"
CONFIG_KEY: Final = "redis"
SECRETS_DIR: Final = "/etc/wsfleet/redis-secrets"
BUS_KEY_DIR: Final = "/etc/wsfleet/bus-key"
BUS_KEY_VOLUME: Final = "bus-key"
RUN_AS_USER: Final = 10001

DEFAULT_BRIDGE_PREFIX: Final = contract.DEFAULT_BRIDGE_PREFIX
