"""Subprocess for the pipeline kill test: one ``deployment`` pipeline run on a World folder.

Usage: python kill_worker.py WORLD_FOLDER, or ``--serve`` to run as a fork server
(tests/support/forkserver.py: imports once, one forked process per run). Reports its progress
on stdout, one line each with a ``time.monotonic()`` stamp: ``started``, then from Kedro hooks
``node+ NAME`` / ``node- NAME`` around every node and ``save+ NAME`` / ``save- NAME`` around
every dataset save (the account commits happen inside the saves of ``deployment.account_update``
and ``deployment.shadow_account_update``, the registry append inside ``deployment.production_model``),
and ``finished`` once the run is done; the parent aims its SIGKILLs at these moments.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402
from kedro.framework.hooks import hook_impl  # noqa: E402
from kedro.framework.hooks.manager import _create_hook_manager  # noqa: E402

from benchmarks.deployment_world import World  # noqa: E402
from tests.support.forkserver import serve  # noqa: E402


def say(*words) -> None:
    print(*words, time.monotonic(), flush=True)


class Progress:
    @hook_impl
    def before_node_run(self, node):
        say("node+", node.name)

    @hook_impl
    def after_node_run(self, node):
        say("node-", node.name)

    @hook_impl
    def before_dataset_saved(self, dataset_name):
        say("save+", dataset_name)

    @hook_impl
    def after_dataset_saved(self, dataset_name):
        say("save-", dataset_name)


def main(args: list[str]) -> None:
    torch.set_num_threads(1)
    hooks = _create_hook_manager()
    hooks.register(Progress())
    world = World(Path(args[0]))
    say("started")
    world.run(hook_manager=hooks)
    say("finished")


if __name__ == "__main__":
    serve(main) if sys.argv[1:] == ["--serve"] else main(sys.argv[1:])
