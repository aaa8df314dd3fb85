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
        "--example",
        type=Path,
        default=None,
        help="RerankPipeline to apply once the operator runs (default: examples/minimal.yaml)",
    )
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="only the cluster: no stand-in, operator or example",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="only build/locate the pinned binaries (incl. helm), print their paths and exit",
    )


# -- the steps after the cluster is up ----------------------------------------------------------------------
# A loopback reranker stand-in, the operator (`rerank-operator run`) and an example pipeline. The
# operator reaches the stand-in through the documented host-override seam, because the example's
# Service name does not resolve outside a cluster. `run` parses the example once, before the cluster
# starts: `args.example` is then its path (or None) and `args.pipeline` its first RerankPipeline (or None).

Step = Callable[["Sandbox", argparse.Namespace], None]
DEFAULT_EXAMPLE = Path("examples") / "minimal.yaml"


def _repo_file(relative: Path) -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (base / relative).is_file():
            return base / relative
    return None


def _load_example(args: argparse.Namespace) -> None:
    """Resolve --example (default: the checkout's minimal example, if there is one) and validate it offline.

    Raises ``FileError`` or ``InvalidPipeline`` for a file the operator could not serve.
    """
    from rerank_operator.cli._files import FileError, parse_pipelines
    from rerank_operator.models import InvalidPipeline

    args.pipeline = None
    if args.no_operator:
        args.example = None
        return
    args.example = args.example or _repo_file(DEFAULT_EXAMPLE)
    if args.example is None:
        return
    parsed = parse_pipelines(str(args.example))
    if parsed.problems:
        raise InvalidPipeline(parsed.problems)
    if not parsed.pipelines:
        raise FileError(f"{args.example}: no RerankPipeline documents found")
    args.pipeline = parsed.pipelines[0]


def start_reranker_standin(sb: Sandbox, args: argparse.Namespace) -> None:
    """A vLLM-protocol stand-in on loopback, serving the example's model name (else the stand-in's default)."""
    from rerank_operator.sandbox.procs import accepts_connections, free_port

    if args.no_operator:
        return
    model = ["--model", args.pipeline.spec.model.effective_served_name] if args.pipeline else []
    args.standin_port = free_port()
    sb.start_process(
        "standin",
        [sys.executable, "-m", "rerank_operator.standin", "--port", str(args.standin_port), *model],
        ready=lambda: accepts_connections(args.standin_port),
        timeout=30,
    )


def start_operator(sb: Sandbox, args: argparse.Namespace) -> None:
    """`rerank-operator run -A` with the example's Service mapped to the stand-in."""
    from urllib.parse import urlsplit

    from rerank_operator.publish import endpoint_for
    from rerank_operator.settings import cluster_domain

    if args.no_operator:
        return
    overrides = ""
    if args.pipeline is not None:
        # The host:port the operator will probe, as it computes it (cluster domain included).
        service = urlsplit(endpoint_for(args.pipeline, cluster_domain())).netloc
        overrides = f"{service}=127.0.0.1:{args.standin_port}"
    exe = Path(sys.executable).parent / "rerank-operator"
    sb.start_process(
        "operator",
        [str(exe) if exe.exists() else "rerank-operator", "run", "-A"],
        env={"RERANK_OPERATOR_HOST_OVERRIDES": overrides, "RERANK_OPERATOR_RESYNC_SECONDS": "10"},
    )


def apply_example(sb: Sandbox, args: argparse.Namespace) -> None:
    """Apply the example file with kubectl, as a user would, and wait (bounded) for its verdict."""
    from rerank_operator.render import child_names

    if args.pipeline is None:  # none found, or --no-operator
        return
    name, ns = args.pipeline.name, args.pipeline.namespace
    sb.apply(args.example)
    print(f"applied {ns}/{name}; waiting for its Ready condition...", file=sys.stderr)

    def verdict() -> str | None:
        out = sb.kubectl(
            "get",
            "rrp",
            name,
            "-n",
            ns,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
        ).stdout.strip()
        return out if out == "True" else None

    try:
        sb.wait_for(verdict, timeout=120, what=f"{ns}/{name} to become Ready")
    except Exception as exc:  # still useful: the status explains why not
        print(f"not Ready yet: {exc}".splitlines()[0], file=sys.stderr)
    print(sb.kubectl("get", "rrp", "-n", ns, "-o", "wide", check=False).stdout, file=sys.stderr)
    cm = child_names(args.pipeline).published
    print(f"published config: kubectl get configmap {cm} -n {ns} -o yaml", file=sys.stderr)


EXTRA_STEPS: list[Step] = [start_reranker_standin, start_operator, apply_example]


def _install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop` so the `with` block exits and tears everything down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    import logging

    from rerank_operator.cli._files import FileError
    from rerank_operator.models import InvalidPipeline
    from rerank_operator.sandbox import Sandbox, SandboxTimeout, default_crds_dir, default_nodes
    from rerank_operator.sandbox.build import BuildError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.build_only:
        from rerank_operator.sandbox.build import main as build_main

        try:
            return build_main([])
        except BuildError as exc:
            print(f"build failed: {exc}", file=sys.stderr)
            return 1
    try:  # before the cluster starts: a bad --example fails at once, not after a minute of startup
        _load_example(args)
    except (FileError, InvalidPipeline) as exc:
        print(f"--example: {exc}", file=sys.stderr)
        return 2
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
            if crds is None and not args.no_crds:
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
