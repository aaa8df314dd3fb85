"""Command line entry point: ``rerank-operator run | render | crd | validate | probe | sandbox``.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported
lazily by name so that, e.g., ``rerank-operator probe`` never imports kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rerank_operator import __version__

# subcommand name -> module under rerank_operator.cli that defines register() and run(args)
SUBCOMMANDS: dict[str, str] = {
    "run": "run_cmd",
    "render": "render_cmd",
    "crd": "crd_cmd",
    "validate": "validate_cmd",
    "probe": "probe_cmd",
    "sandbox": "sandbox_cmd",
}

HELP: dict[str, str] = {
    "run": "run the operator (kopf) against the current kubeconfig or in-cluster config",
    "render": "print every child manifest of a RerankPipeline as multi-document YAML (offline)",
    "crd": "print the generated CustomResourceDefinition",
    "validate": "validate a RerankPipeline file offline; one problem per line",
    "probe": "send a canary rerank request to an endpoint and print a JSON verdict",
    "sandbox": "start a local control plane with fake GPU nodes, the operator and a reranker stand-in",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        p.set_defaults(_module=module_name)
        module = importlib.import_module(f"rerank_operator.cli.{module_name}")
        module.register(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"rerank_operator.cli.{args._module}")
    code: int = module.run(args)
    return code


def entrypoint() -> None:
    sys.exit(main())
