"""k8s-auto-fix: find Kubernetes misconfigurations, propose minimal JSON Patches,
verify them, rank them by risk and write them back into the user's files."""

__version__ = "0.1.0"
