"""CSV and Parquet datasets that record which file they read and refuse repeated column names.

Identical to kedro-datasets' ``pandas.CSVDataset`` / ``pandas.ParquetDataset``, except that
the loaded frame carries ``attrs["source"]``: the path actually read. data_ingestion names
that file in its errors and in the quality report, so a ``conf/local`` catalog override
cannot make the report name a different file than the one that was ingested. And a file
whose header repeats a column name (``AAPL`` twice, or ``Close`` and `` close``) is refused
before pandas renames the repeat (``market_data.check_csv_header``).
"""

from __future__ import annotations

import pandas as pd
from kedro.io.core import get_filepath_str
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from ..market_data import check_csv_header, check_unique_columns


def _source(dataset) -> str:
    return get_filepath_str(dataset._get_load_path(), dataset._protocol)


class SourcedCSVDataset(CSVDataset):
    """``pandas.CSVDataset`` whose loaded frame records its path in ``attrs["source"]``; a
    repeated column name in the header row is refused."""

    def load(self) -> pd.DataFrame:
        source = _source(self)  # the local path, or protocol://path
        remote = {} if self._protocol == "file" else {"storage_options": self._storage_options}
        check_csv_header(source, source, **{**remote, **self._load_args})
        frame = super().load()
        frame.attrs["source"] = source
        return frame


class SourcedParquetDataset(ParquetDataset):
    """``pandas.ParquetDataset`` whose loaded frame records its path in ``attrs["source"]``;
    column names that differ only in case or surrounding spaces are refused."""

    def load(self) -> pd.DataFrame:
        frame = super().load()
        frame.attrs["source"] = _source(self)
        check_unique_columns(list(frame.columns), frame.attrs["source"])
        return frame
