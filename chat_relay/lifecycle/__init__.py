"""The running app's lifecycle: readiness for load balancers, and the drain at shutdown."""
