"""Parse command lines with vLLM's own ``vllm serve`` parser. Run with the engine venv's python.

stdin: a JSON list of argvs (what follows ``vllm``, e.g. ``["serve", "<model>", "--port", "8000"]``).
stdout: a JSON object: ``results`` (one per argv: ``ok``, the parsed values the operator sets or
``error``) and ``options`` (every option string the parser knows).

Builds the parser exactly as ``vllm.entrypoints.cli.main`` does for ``serve`` and runs the subcommand's
own ``validate`` (the checks vLLM makes before loading anything). No model is loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

FIELDS = (
    "model_tag",
    "model",
    "runner",
    "host",
    "port",
    "served_model_name",
    "dtype",
    "max_model_len",
    "revision",
    "convert",
    "trust_remote_code",
    "hf_overrides",
    "chat_template",
    "gpu_memory_utilization",
    "max_num_seqs",
)


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def main() -> int:
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cases = json.load(sys.stdin)
    results: list[dict[str, Any]] = []
    options: set[str] = set()
    for argv in cases:
        parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
        subparsers = parser.add_subparsers(required=False, dest="subparser")
        command = ServeSubcommand()
        serve = command.subparser_init(subparsers)
        options.update(serve._option_string_actions)
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                args = parser.parse_args(argv)
                command.validate(args)
        except SystemExit as exc:
            results.append({"ok": False, "exit": exc.code, "error": errors.getvalue()[-3000:]})
            continue
        except Exception as exc:
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({"ok": True, "parsed": {f: _plain(getattr(args, f, None)) for f in FIELDS}})
    json.dump({"results": results, "options": sorted(options)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
