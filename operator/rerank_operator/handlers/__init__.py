"""kopf glue: read state, call the reconcile engine, let it write status. Importing registers handlers."""

from rerank_operator.handlers import pipeline  # noqa: F401  (registration side effect)
