"""Local Kubernetes control plane for the test suite (see localcluster.py)."""
