"""Names fixed by the operational contract between node, operator and chart.

The operator imports nothing from the ``wsfleet`` node package: the few names both sides use are
repeated here on purpose (control channel, registry keys, ports, mount paths). They are part of the
fixed contract (see ``operator/README.md``, "Contract"), so they only change together with the node.
"""

from __future__ import annotations

from typing import Final

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
RUN_AS_USER: Final = 10001

# Redis keys and channel, relative to the fleet's bridge prefix (contract: "Redis node list").
DEFAULT_BRIDGE_PREFIX: Final = "csbp:"
CONTROL_CHANNEL: Final = "wsfleet:control"
REGISTRY_NODES: Final = "wsfleet:nodes"
REGISTRY_INFO: Final = "wsfleet:nodeinfo"
CONTROL_ACTION_REDIS_SET: Final = "redis.set"
