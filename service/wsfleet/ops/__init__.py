"""What operators need from a node: the internal HTTP port (metrics, health, readiness, cluster
view), structured logs, tracing and the configuration file."""
