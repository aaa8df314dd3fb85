"""``python -m rerank_operator``: same as the ``rerank-operator`` console script."""

from rerank_operator.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
