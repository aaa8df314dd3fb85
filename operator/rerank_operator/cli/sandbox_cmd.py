"""``rerank-operator sandbox``: a local control plane with fake GPU nodes, running until Ctrl-C.

The first run compiles the pinned Kubernetes binaries (many minutes, cached afterwards; see
:mod:`rerank_operator.sandbox.build`). Later steps hook in through :data:`EXTRA_STEPS`: each step gets the
running sandbox and the parsed arguments and may start processes with ``sb.start_process`` (torn down
with the sandbox) or apply manifests with ``sb.apply``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rerank_operator.sandbox import Sandbox


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--crds",
        type=Path,
        default=None,
        help="file or directory applied with `kubectl apply -f` (default: ./crds or the checkout's crds/)",
    )
    parser.add_argument("--no-crds", action="store_true", help="do not install CRDs")
    parser.add_argument("--gpu-nodes", type=int, default=2, help="fake GPU nodes (4 x nvidia.com/gpu each)")
    parser.add_argument("--cpu-nodes", type=int, default=1, help="fake CPU-only nodes")
    parser.add_argument("--workdir", type=Path, default=None, help="state dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (logs, certs) after exit")
    parser.add_argument(
        "--kubeconfig-out", type=Path, default=None, help="also copy the admin kubeconfig to this path"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per startup phase (default 90)")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="only build/locate the pinned binaries (incl. helm), print their paths and exit",
    )


# -- hook points ---------------------------------------------------------------------------------------------
# Steps run in order once the cluster (and CRDs) are up; planned: a loopback reranker stand-in,
# `rerank-operator run` via sb.start_process("operator", [...]), then applying examples/.

Step = Callable[["Sandbox", argparse.Namespace], None]


def start_reranker_standin(sb: Sandbox, args: argparse.Namespace) -> None:
    """Hook: start a loopback reranker stand-in (not implemented yet)."""


def start_operator(sb: Sandbox, args: argparse.Namespace) -> None:
    """Hook: start `rerank-operator run` against sb.kubeconfig (not implemented yet)."""


def apply_example(sb: Sandbox, args: argparse.Namespace) -> None:
    """Hook: apply an example RerankPipeline (not implemented yet)."""


EXTRA_STEPS: list[Step] = [start_reranker_standin, start_operator, apply_example]


def _install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop` so the `with` block exits and tears everything down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    import logging

    from rerank_operator.sandbox import Sandbox, SandboxTimeout, default_crds_dir
    from rerank_operator.sandbox.build import BuildError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.build_only:
        from rerank_operator.sandbox.build import main as build_main

        try:
            return build_main([])
        except BuildError as exc:
            print(f"build failed: {exc}", file=sys.stderr)
            return 1
    nodes = None
    if args.gpu_nodes != 2 or args.cpu_nodes != 1:
        from rerank_operator.sandbox import default_nodes

        nodes = default_nodes(gpu_nodes=args.gpu_nodes, cpu_nodes=args.cpu_nodes)
    crds = None if args.no_crds else (args.crds or default_crds_dir())
    stop = threading.Event()
    # Signals during startup interrupt it (KeyboardInterrupt -> clean teardown); afterwards they set `stop`.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with Sandbox(
            crds=crds, nodes=nodes, workdir=args.workdir, keep_workdir=args.keep or None, timeout=args.timeout
        ) as sb:
            for step in EXTRA_STEPS:
                step(sb, args)
            _install_stop_handlers(stop)
            if args.kubeconfig_out:
                shutil.copyfile(sb.kubeconfig, args.kubeconfig_out)
                args.kubeconfig_out.chmod(0o600)
            kubeconfig = args.kubeconfig_out or sb.kubeconfig
            print(f"sandbox ready: {sb.server} (logs in {sb.logs_dir})", file=sys.stderr)
            if crds is None:
                print("no CRDs installed (none found; pass --crds DIR)", file=sys.stderr)
            print(f"export KUBECONFIG={kubeconfig}")
            print(f"KUBECONFIG={kubeconfig} kubectl get rrp -o wide")
            print("press Ctrl-C to stop", file=sys.stderr, flush=True)
            while not stop.wait(1.0):
                dead = [p for p in sb.processes.values() if not p.alive()]
                if dead:
                    print("a sandbox process exited:\n" + dead[0].describe_failure(), file=sys.stderr)
                    return 1
            print("stopping sandbox...", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; sandbox stopped", file=sys.stderr)
        return 130
    except (BuildError, SandboxTimeout) as exc:
        print(f"sandbox failed: {exc}", file=sys.stderr)
        return 1
    return 0
