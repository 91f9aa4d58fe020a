"""Subprocess for the pipeline kill test: one ``deployment`` pipeline run on a World folder.

Usage: python kill_worker.py WORLD_FOLDER. Prints "started" once imports are done.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402

from tests.support.deployment_world import World  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    world = World(Path(sys.argv[1]))
    print("started", flush=True)
    world.run()
