"""JSON schemas for the custom kinds the chart renders, which kubernetes-validate has no schema for.

Written from the upstream CRDs (prometheus-operator monitoring.coreos.com/v1, Gateway API
gateway.networking.k8s.io/v1) and from the wsfleet contract, restricted to the fields the chart
may use: a misspelt or misplaced field fails.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$",
}
_DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _STR_MAP, "matchExpressions": {"type": "array"}},
}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": list(required),
    }


_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": _DNS_LABEL,
        "namespace": _DNS_LABEL,
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
    },
    "additionalProperties": False,
}


def _kind(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


_RELABEL = _obj(
    {
        "sourceLabels": {"type": "array", "items": _STR},
        "separator": _STR,
        "targetLabel": _STR,
        "regex": _STR,
        "modulus": {"type": "integer"},
        "replacement": _STR,
        "action": {
            "enum": [
                "replace",
                "keep",
                "drop",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
                "keepequal",
                "dropequal",
            ]
        },
    }
)

SERVICE_MONITOR = _kind(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _obj(
        {
            "jobLabel": _STR,
            "targetLabels": {"type": "array", "items": _STR},
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": _obj(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _DNS_LABEL}}
            ),
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": _STR,
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": _RELABEL},
                        "metricRelabelings": {"type": "array", "items": _RELABEL},
                    },
                    ("port",),
                ),
            },
        },
        ("selector", "endpoints"),
    ),
)

POD_MONITOR = _kind(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _obj(
        {
            "jobLabel": _STR,
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": _obj(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _DNS_LABEL}}
            ),
            "podMetricsEndpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": _STR,
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": _RELABEL},
                    },
                    ("port",),
                ),
            },
        },
        ("selector", "podMetricsEndpoints"),
    ),
)

PROMETHEUS_RULE = _kind(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _obj(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "name": {"type": "string", "minLength": 1},
                        "interval": _DURATION,
                        "rules": {
                            "type": "array",
                            "minItems": 1,
                            "items": _obj(
                                {
                                    "alert": {
                                        "type": "string",
                                        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                                    },
                                    "record": _STR,
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": _DURATION,
                                    "keep_firing_for": _DURATION,
                                    "labels": _STR_MAP,
                                    "annotations": _STR_MAP,
                                },
                                ("expr",),
                            ),
                        },
                    },
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
)

_PARENT_REF = _obj(
    {
        "group": _STR,
        "kind": _STR,
        "name": _STR,
        "namespace": _STR,
        "sectionName": _STR,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    },
    ("name",),
)
HTTP_ROUTE = _kind(
    "gateway.networking.k8s.io/v1",
    "HTTPRoute",
    _obj(
        {
            "parentRefs": {"type": "array", "minItems": 1, "maxItems": 32, "items": _PARENT_REF},
            "hostnames": {"type": "array", "maxItems": 16, "items": _STR},
            "rules": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "name": _STR,
                        "matches": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "path": _obj(
                                        {
                                            "type": {
                                                "enum": ["Exact", "PathPrefix", "RegularExpression"]
                                            },
                                            "value": {"type": "string", "pattern": "^/"},
                                        }
                                    ),
                                    "headers": {"type": "array"},
                                    "queryParams": {"type": "array"},
                                    "method": _STR,
                                }
                            ),
                        },
                        "timeouts": _obj({"request": _DURATION, "backendRequest": _DURATION}),
                        "backendRefs": {
                            "type": "array",
                            "minItems": 1,
                            "items": _obj(
                                {
                                    "group": _STR,
                                    "kind": _STR,
                                    "name": _STR,
                                    "namespace": _STR,
                                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    "weight": {"type": "integer", "minimum": 0},
                                },
                                ("name", "port"),
                            ),
                        },
                    },
                    ("backendRefs",),
                ),
            },
        },
        ("parentRefs", "rules"),
    ),
)

# The WsFleet spec as the contract fixes it (the CRD's own schema is checked too when it exists).
_FREE = {"type": "object"}
_INT_OR_STR = {"type": ["integer", "string"]}
WSFLEET = _kind(
    "wsfleet.io/v1alpha1",
    "WsFleet",
    _obj(
        {
            "replicas": {"type": "integer", "minimum": 0},
            "image": {"type": "string", "minLength": 1},
            "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            "busKeySecretRef": _obj({"name": _STR, "key": _STR}, ("name",)),
            "redis": _obj(
                {
                    "nodes": {
                        "type": "array",
                        "minItems": 1,
                        "items": _obj(
                            {
                                "host": {"type": "string", "minLength": 1},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "db": {"type": "integer", "minimum": 0},
                                "tls": {"type": "boolean"},
                                "passwordSecretRef": _obj(
                                    {"name": _STR, "key": _STR}, ("name", "key")
                                ),
                            },
                            ("host",),
                        ),
                    }
                },
                ("nodes",),
            ),
            "server": _obj(
                {
                    "app": _STR,
                    "settings": _STR_MAP,
                    "logFormat": {"enum": ["json", "text"]},
                    "recovery": {"type": "boolean"},
                }
            ),
            "drain": _obj(
                {
                    "timeoutSeconds": {"type": "integer", "minimum": 1},
                    "preStopSeconds": {"type": "integer", "minimum": 0},
                }
            ),
            "rollout": _obj({"maxSurge": _INT_OR_STR, "maxUnavailable": _INT_OR_STR}),
            "disruption": _obj(
                {
                    "maxUnavailable": _INT_OR_STR,
                    "unhealthyPodEvictionPolicy": {"enum": ["AlwaysAllow", "IfHealthyBudget"]},
                }
            ),
            "resources": _FREE,
            "env": {"type": "array", "items": _FREE},
            "envFrom": {"type": "array", "items": _FREE},
            "volumeMounts": {"type": "array", "items": _FREE},
            "podTemplate": _obj(
                {
                    "labels": _STR_MAP,
                    "annotations": _STR_MAP,
                    "nodeSelector": _STR_MAP,
                    "tolerations": {"type": "array"},
                    "affinity": _FREE,
                    "topologySpreadConstraints": {"type": "array", "items": _FREE},
                    "priorityClassName": _STR,
                    "serviceAccountName": _STR,
                    "imagePullSecrets": {"type": "array", "items": _FREE},
                    "volumes": {"type": "array", "items": _FREE},
                }
            ),
            "autoscaling": _obj(
                {
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer", "minimum": 1},
                }
            ),
            "service": _obj(
                {
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                }
            ),
        },
        ("redis",),
    ),
)

BY_KIND = {
    "ServiceMonitor": SERVICE_MONITOR,
    "PodMonitor": POD_MONITOR,
    "PrometheusRule": PROMETHEUS_RULE,
    "HTTPRoute": HTTP_ROUTE,
    "WsFleet": WSFLEET,
}
