"""Paths into this checkout and the project's own configuration, for tests and their workers."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

from reinforce_strategy_creator import paths

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RAW_DIR = PROJECT_ROOT / "data" / "01_raw"
SP500_CSV = RAW_DIR / "sp500_daily_1999_2018.csv"
NASDAQ_CSV = RAW_DIR / "nasdaq_daily_1999_2018.csv"
STOCKS_CSV = RAW_DIR / "stocks_daily_2000_2013.csv"
SP500_20_CSV = RAW_DIR / "sp500_20_stocks_close_1990_2022.csv"  # wide, close only
SP500_INDEX_CLOSE_CSV = RAW_DIR / "sp500_index_close_1990_2022.csv"
# malformed raw files, one broken rule each (tests/market_data/fixtures/make_fixtures.py)
BAD_RAW_FILES = PROJECT_ROOT / "tests" / "market_data" / "fixtures"


def catalog_config(*names: str) -> dict:
    """The project's catalog entries (conf/base, globals resolved) named ``names`` (all when none),
    as plain dicts a test can relocate into a tmp folder."""
    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
        catalog = loader["catalog"]
    return copy.deepcopy({k: v for k, v in catalog.items() if not names or k in names})


def copy_project(
    root: Path, envs: tuple[str, ...] = ("base",), raw: bool = True, notebooks: bool = False
) -> Path:
    """A throw-away copy of this checkout's project at ``root`` (:func:`~reinforce_strategy_creator.
    paths.copy_project`): pyproject, the ``conf`` environments ``envs``, an empty ``conf/local``,
    ``src`` and (``raw``) the embedded raw files; ``notebooks`` adds the notebooks. The venv's
    editable install is not involved: ``kedro`` run in the copy imports the copy's ``src``."""
    return paths.copy_project(PROJECT_ROOT, root, envs=envs, raw=raw, notebooks=notebooks)


KEDRO = Path(sys.executable).with_name("kedro")


def kedro(root: Path, *args: str, timeout: int = 1800, **env: str) -> subprocess.CompletedProcess:
    """The real ``kedro`` CLI of this venv, run in the project copy ``root``."""
    full_env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "COLUMNS": "200", **env}
    return subprocess.run(
        [str(KEDRO), *args],
        cwd=root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
