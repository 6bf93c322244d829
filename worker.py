"""Runs forgeflow's workers: `python worker.py [--queue forgeflow|forgeflow-sandbox]`.

An entry point only: the wiring (clients, activities, workers, the sandbox child process) is in
starter/workers.py, which `forgeflow worker` and `forgeflow demo` use too. Nothing imports this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from starter.workers import serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", action="append", help="serve only this task queue (repeatable)")
    parser.add_argument("--log-format", choices=["json", "text"], default="json", help="log lines (default: json)")
    args = parser.parse_args()
    status = asyncio.run(serve(args.queue, args.log_format))
    # The Temporal client's Rust threads can abort CPython's teardown (temporalio/sdk-python#300),
    # turning the exit status into SIGABRT; a supervisor must see the status serve() chose.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
