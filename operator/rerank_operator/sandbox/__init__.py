"""Local Kubernetes sandbox (placeholder)."""
