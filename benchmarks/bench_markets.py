"""The planted-market suite's figures: each rule against buy-and-hold, per window and market.

Usage: ``python benchmarks/bench_markets.py [--seeds 1 2] [--null-seeds 1 2 3]
[--calibration-seeds 20] [--option KIND.PARAM=VALUE ...] [--write]``; ``--option`` changes a
builder's default (e.g. ``--option momentum.strength=0.3``) to see what another strength
gives. Prints (and with ``--write`` puts between the ``bench_markets`` markers of
docs/markets.md):

* the default structure parameters of every kind (read from the builders' signatures);
* the suite table: rule and buy-and-hold Sharpe on train, validation and test for every market
  of ``planted_suite`` (default seeds), replayed by ``markets.rule_report`` with the project's
  environment (costs, capital) and splits;
* the calibration table: over seeds 1..N of each planted kind, the rule's mean and median
  Sharpe, buy-and-hold's mean, and how often the rule beats buy-and-hold or exceeds 0.5, on
  validation and test. It supports "clearly positive for most seeds" in docs/markets.md.

The figures are deterministic (seeded markets, deterministic replays); about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv  # noqa: E402
from reinforce_strategy_creator.markets import (  # noqa: E402
    BUILDERS,
    PLANTED_KINDS,
    make_market,
    planted_suite,
    rule_report,
)
from reinforce_strategy_creator.project_params import parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
DOC = ROOT / "docs" / "markets.md"
START, END = "<!-- bench_markets:start -->", "<!-- bench_markets:end -->"
WINDOWS = ("train", "validation", "test")
RULES = {
    "momentum": "`hold_after_up_day`",
    "reversion": "`hold_after_down_day`",
    "trend": "`trend_filter`",
    "volatility": "`low_volatility_filter`",
    "null": "`always_long`",
}


def source_prices() -> pd.DataFrame:
    logging.getLogger("reinforce_strategy_creator.market_data").setLevel(logging.ERROR)  # stale opens
    prices, _ = normalise_prices(read_raw_csv(SOURCE), source=str(SOURCE))
    return prices


def project_blocks() -> tuple[dict, dict]:
    """The project's ``environment`` and ``feature_engineering`` parameters (conf/base)."""
    params = parameters()
    return params["environment"], params["feature_engineering"]


def defaults_table() -> list[str]:
    lines = ["| kind | rule | default parameters |", "| --- | --- | --- |"]
    skip = {"source", "seed", "calendar"}
    for kind in (*PLANTED_KINDS, "null"):
        build = BUILDERS[kind]
        params = [
            f"{n}={p.default!r}"
            for n, p in inspect.signature(build).parameters.items()
            if n not in skip and p.default is not inspect.Parameter.empty
        ]
        lines.append(f"| {kind} | {RULES[kind]} | {', '.join(params) or '-'} |")
    return lines


def suite_table(report: pd.DataFrame) -> list[str]:
    head = " | ".join(f"{w} rule | {w} B&H" for w in WINDOWS)
    lines = [f"| market | {head} |", "| --- |" + " ---: |" * (2 * len(WINDOWS))]
    for market, group in report.groupby("market", sort=False):
        rows = group.set_index("window")
        cells = " | ".join(
            f"{rows.at[w, 'rule_sharpe']:.2f} | {rows.at[w, 'buy_and_hold_sharpe']:.2f}" for w in WINDOWS
        )
        lines.append(f"| {market} | {cells} |")
    return lines


def parse_options(items: list[str]) -> dict[str, dict[str, float]]:
    """``["momentum.strength=0.3"]`` -> ``{"momentum": {"strength": 0.3}}``."""
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, _, value = item.partition("=")
        kind, _, param = key.partition(".")
        if not (kind and param and value):
            raise SystemExit(f"--option {item!r}: expected KIND.PARAM=VALUE, e.g. trend.strength=0.5")
        out.setdefault(kind, {})[param] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def calibration_table(source: pd.DataFrame, n_seeds: int, options) -> list[str]:
    lines = [
        "| kind | window | rule mean | rule median | B&H mean | rule > B&H | rule > 0.5 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in PLANTED_KINDS:
        report = pd.concat(
            [
                rule_report(
                    make_market(kind, source, s, **options.get(kind, {})),
                    *project_blocks(),
                    windows=("validation", "test"),
                )
                for s in range(1, n_seeds + 1)
            ]
        )
        for window, r in report.groupby("window", sort=False):
            beats = (r["rule_sharpe"] > r["buy_and_hold_sharpe"]).mean()
            positive = (r["rule_sharpe"] > 0.5).mean()
            rule, bh = r["rule_sharpe"], r["buy_and_hold_sharpe"]
            lines.append(
                f"| {kind} | {window} | {rule.mean():.2f} | {rule.median():.2f} | {bh.mean():.2f} "
                f"| {beats:.0%} | {positive:.0%} |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--null-seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--calibration-seeds", type=int, default=20, help="seeds 1..N per planted kind; 0 skips")
    ap.add_argument("--option", action="append", default=[], help="KIND.PARAM=VALUE")
    ap.add_argument("--write", action="store_true", help="write the tables into docs/markets.md")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    source = source_prices()
    options = parse_options(a.option)
    if options and a.write:
        raise SystemExit("--write documents the defaults; drop --option to write docs/markets.md.")
    suite = planted_suite(source, seeds=a.seeds, null_seeds=a.null_seeds, options=options)
    reports = [rule_report(m, *project_blocks()) for m in suite]
    report, env = pd.concat(reports, ignore_index=True), reports[0].attrs["environment"]
    seeds = " ".join(map(str, a.seeds))
    null_seeds = " ".join(map(str, a.null_seeds))
    lines = [
        (
            f"Generated by `python benchmarks/bench_markets.py --seeds {seeds} "
            f"--null-seeds {null_seeds} --calibration-seeds {a.calibration_seeds} --write` "
            f"from `{SOURCE.relative_to(ROOT)}`. Replays: `env.replay`, "
            f"fill `{env['fill_price']}`, commission {env['commission_bps']:g} bps, "
            f"slippage {env['slippage_bps']:g} bps, capital {env['initial_capital']:,.0f}, "
            f"first decision at bar `environment.window - 1` = {env['window'] - 1} of each "
            "`model_input_*` window; Sharpe annualised, risk-free 0 "
            "(`evaluation.metrics`)."
        ),
        "",
        "Default structures:",
        "",
        *defaults_table(),
        "",
        "Suite (`planted_suite` defaults), Sharpe of the rule and of buy-and-hold (B&H):",
        "",
        *suite_table(report),
        "",
    ]
    n = a.calibration_seeds
    if n > 0:
        lines += [
            f"Calibration over seeds 1..{n} of each planted kind (share of seeds):",
            "",
            *calibration_table(source, n, options),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if a.write:
        doc = DOC.read_text()
        if START not in doc or END not in doc:
            raise SystemExit(f"{DOC}: markers {START} / {END} not found; add them where the tables go.")
        head, rest = doc.split(START, 1)
        DOC.write_text(head + START + "\n" + text + rest[rest.index(END) :])
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
