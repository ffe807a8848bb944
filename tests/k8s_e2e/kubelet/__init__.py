"""A process kubelet for the end-to-end tests (test infrastructure, not part of wsfleet).

It registers a Node with a Lease and runs the pods bound to it as real processes, each in its own
network namespace with its own IP, ConfigMap/Secret volumes updated atomically, a service-account
token, the pod's user, probes, status, restarts and the graceful stop. See ``docs/kubernetes.md``
("How it is tested end to end") and :mod:`.images` for the image table.

    python -m tests.k8s_e2e.kubelet --api-url URL --token-file F --ca-file F --node NAME \\
        --index N --cluster-net NETNS --state-dir DIR [--backoff SECONDS]
"""
