"""CSV and Parquet datasets that record which file they read.

Identical to kedro-datasets' ``pandas.CSVDataset`` / ``pandas.ParquetDataset``, except that
the loaded frame carries ``attrs["source"]``: the path actually read. data_ingestion names
that file in its errors and in the quality report, so a ``conf/local`` catalog override
cannot make the report name a different file than the one that was ingested.
"""

from __future__ import annotations

import pandas as pd
from kedro.io.core import get_filepath_str
from kedro_datasets.pandas import CSVDataset, ParquetDataset


def _stamp(frame: pd.DataFrame, dataset) -> pd.DataFrame:
    frame.attrs["source"] = get_filepath_str(dataset._get_load_path(), dataset._protocol)
    return frame


class SourcedCSVDataset(CSVDataset):
    """``pandas.CSVDataset`` whose loaded frame records its path in ``attrs["source"]``."""

    def load(self) -> pd.DataFrame:
        return _stamp(super().load(), self)


class SourcedParquetDataset(ParquetDataset):
    """``pandas.ParquetDataset`` whose loaded frame records its path in ``attrs["source"]``."""

    def load(self) -> pd.DataFrame:
        return _stamp(super().load(), self)
