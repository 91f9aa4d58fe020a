"""Project pipelines.

Each stage is a modular pipeline under ``pipelines/<stage>/``; ``full_cycle`` composes
them. Kedro 1.7 imports a pipeline named on the command line from its own package,
so discovery is left to :func:`kedro.framework.project.find_pipelines`.
"""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if "full_cycle" in pipelines:
        pipelines["__default__"] = pipelines["full_cycle"]
    return pipelines
