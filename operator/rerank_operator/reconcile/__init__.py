"""Level-based reconciliation: observe, decide, act. The kopf glue lives in ``handlers``."""
