"""Runs one measured coroutine in its own (pinned) process: `python -m benchmarks.child mod:func ARGS.json`.

The coroutine runs on uvloop, as it does under `fediverse-net serve`; its JSON result is printed
as the last line of stdout. Logging is configured as `serve` configures it (JSON lines, INFO) and
goes to stderr, which the orchestrator sends to a log file.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path


def main() -> None:
    target, args_file = sys.argv[1], sys.argv[2]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    kwargs = json.loads(Path(args_file).read_text())
    from fediverse_net import logs

    logs.configure("INFO")
    try:
        import uvloop

        result = uvloop.run(func(**kwargs))
    except ImportError:
        result = asyncio.run(func(**kwargs))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
