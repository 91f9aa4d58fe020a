"""Learning power on the planted-market suite: do the default agents find a planted edge, does
the selection resist the winner's curse, and does the gate pass on edges and fail on noise?

Usage: ``python benchmarks/bench_learning.py [--env ENV] [--seeds 1 2] [--null-seeds 1 2 3]
[--kinds momentum trend ...] [--write]``; ``--universes`` runs the planted and null universes
instead (below). Every market of ``markets.planted_suite`` runs through
the project's own pipelines in process (``experiments.run_cycle``: data_ingestion,
feature_engineering, training, evaluation) with the parameters of ``conf/base`` (overlaid with
``conf/<ENV>``), plus the market's environment overrides (fills at the next open: these markets
have real opens). The rule of each market is replayed on the same test rows with the same
costs and capital (``markets.rule_report``). ``--write`` puts the tables between the
``bench_learning`` markers of docs/learning.md.

``--universes [--universe-kinds reversal ...] [--universe-seeds 1 2] [--universe-null-seeds 1 2 3 4]
[--n-assets 5]``: universes of ``--n-assets`` tickers made of real days of the 20-stock close
panel (``markets.UNIVERSE_KINDS`` planted, and null), on the panel's own dates, each through
the portfolio stage in process (``experiments.study_universe``: data_ingestion and portfolio,
as ``kedro run --pipelines data_ingestion,portfolio --env portfolio``) with the parameters of
``conf/base`` overlaid with ``conf/<ENV>`` and then ``conf/portfolio`` (the universe's account
and scheme), no index benchmark. The market's rule is replayed on the stitched record's rows.
``--write`` puts that table between the ``bench_learning_universes`` markers.

Deterministic (seeded markets, seeded training); about a minute per market with the defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from reinforce_strategy_creator.evaluation.harm import (  # noqa: E402
    EXPOSURE_SHARE,
    SHARPE_GAP,
    TURNOVER,
    harm,
)
from reinforce_strategy_creator.experiments import deep_merge, study_market, study_universe  # noqa: E402
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv  # noqa: E402
from reinforce_strategy_creator.markets import PLANTED_KINDS, UNIVERSE_KINDS, planted_suite  # noqa: E402
from reinforce_strategy_creator.project_params import parameters  # noqa: E402
from reinforce_strategy_creator.universe import read_universe_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
DOC = ROOT / "docs" / "learning.md"
START, END = "<!-- bench_learning:start -->", "<!-- bench_learning:end -->"
UNIVERSE_SOURCE = ROOT / "data" / "01_raw" / "sp500_20_stocks_close_1990_2022.csv"
UNIVERSE_OVERLAY = ROOT / "conf" / "portfolio" / "parameters.yml"
UNIVERSE_MARKERS = "<!-- bench_learning_universes:start -->", "<!-- bench_learning_universes:end -->"


def source_prices() -> pd.DataFrame:
    logging.getLogger("reinforce_strategy_creator.market_data").setLevel(logging.ERROR)  # stale opens
    prices, _ = normalise_prices(read_raw_csv(SOURCE), source=str(SOURCE))
    return prices


def _pct(value: float, rule: float) -> str:
    return "n/a" if rule <= 0 or not np.isfinite(value) else f"{100 * value / rule:.0f} %"


def agent_table(studies: list[dict]) -> str:
    agents = sorted({a for s in studies for a in s["agents"].index})
    head = ["market", "rule", "B&H"] + [f"{a} (mean ± std)" for a in agents] + [f"{a} ens." for a in agents]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in studies:
        cells = [s["market"], f"{s['rule']:.2f}", f"{s['buy_and_hold']:.2f}"]
        for a in agents:
            m, sd = s["agents"].loc[a, "mean"], s["agents"].loc[a, "std"]
            share = "" if s["kind"] == "null" else f" = {_pct(m, s['rule'])}"
            cells.append(f"{m:.2f} ± {sd:.2f}{share}")
        for a in agents:
            v = float(s["ensembles"].get(a, np.nan))
            cells.append(f"{v:.2f}" + ("" if s["kind"] == "null" else f" = {_pct(v, s['rule'])}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(studies: list[dict]) -> str:
    lines = [
        "| market | champion | champion test Sharpe | − B&H | exposure / B&H's | turnover / year | rule | "
        "gate | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in studies:
        ct = s["champion_test"]
        gap = "n/a" if ct is None else f"{ct - s['buy_and_hold']:+.2f}"
        lines.append(
            f"| {s['market']} | {s['champion']} | {'n/a' if ct is None else f'{ct:.2f}'} | {gap} | "
            f"{s['champion_exposure'] / s['buy_and_hold_exposure']:.0%} | {s['champion_turnover']:.1f} | "
            f"{s['rule']:.2f} | {'PASS' if s['passed'] else 'fail'} | {s['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def harm_counts(studies: list[dict]) -> str:
    """The do-no-harm count on the null markets: the champion's test Sharpe at least
    buy-and-hold's minus 0.15 and its exposure at least 80 % of buy-and-hold's."""
    null = [s for s in studies if s["kind"] == "null"]
    if not null:
        return ""
    bands = [
        harm(
            np.nan if s["champion_test"] is None else s["champion_test"],
            s["champion_exposure"],
            s["champion_turnover"],
            s["buy_and_hold"],
            s["buy_and_hold_exposure"],
        )
        for s in null
    ]
    return harm_sentence(bands, "null markets the champion's test", "buy-and-hold's", "exposure")


def harm_sentence(bands: list, subject: str, benchmark: str, exposure: str) -> str:
    """How many of the null ``bands`` (``evaluation.harm.Harm``) keep Sharpe and exposure in the
    band, and how many stay under the turnover limit."""
    ok = sum(b.sharpe and b.exposure for b in bands)
    calm = sum(b.turnover for b in bands)
    return (
        f"Do no harm: on **{ok} of {len(bands)}** {subject} Sharpe is at least {benchmark} minus "
        f"{SHARPE_GAP} with at least {EXPOSURE_SHARE:.0%} of its {exposure}, and on **{calm} of "
        f"{len(bands)}** it turns over at most {TURNOVER:g} times a year."
    )


def selection_table(studies: list[dict]) -> str:
    frame = pd.concat([s["selection"].assign(market=s["market"]) for s in studies], ignore_index=True)
    lines = [
        "| selection rule | champion test Sharpe, mean | champion ≥ median candidate |",
        "| --- | --- | --- |",
    ]
    for rule, g in frame.groupby("rule", sort=False):
        lines.append(
            f"| `{rule}` | {g['test'].astype(float).mean():.2f} | "
            f"{int(g['at_least_median'].sum())} of {len(g)} markets |"
        )
    return "\n".join(lines)


def gate_counts(studies: list[dict]) -> str:
    planted = [s for s in studies if s["kind"] != "null"]
    null = [s for s in studies if s["kind"] == "null"]
    return (
        f"The gate passed on **{sum(s['passed'] for s in planted)} of {len(planted)}** planted markets "
        f"and on **{sum(s['passed'] for s in null)} of {len(null)}** null markets (it should pass on "
        "every planted market and on no null market)."
    )


def render(studies: list[dict], env: str | None, seconds: float) -> str:
    threads = torch.get_num_threads()
    parts = [
        f"Measured with `python benchmarks/bench_learning.py{' --env ' + env if env else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} CPU core(s), {threads} torch thread(s); "
        f"{len(studies)} markets in {seconds / 60:.1f} min.",
        "**Test Sharpe per agent** (mean ± std over its seeds, and as a share of the rule's test "
        "Sharpe on the same rows, costs and capital), and of each agent's seed ensemble:",
        agent_table(studies),
        "**The champion and the gate** (chosen on validation by `evaluation.selection`, decided on "
        "its single test replay):",
        verdict_table(studies),
        gate_counts(studies),
        harm_counts(studies),
        "**Selection rules** on the same trained candidates (validation records only), against the "
        "median candidate's test Sharpe on the same market:",
        selection_table(studies),
    ]
    return "\n\n".join(p for p in parts if p)


def write(text: str, markers: tuple[str, str] = (START, END)) -> None:
    doc = DOC.read_text()
    start, end = doc.index(markers[0]) + len(markers[0]), doc.index(markers[1])
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


# --------------------------------------------------------------------------- universes
def universe_parameters(env: str | None) -> dict:
    """``conf/base`` overlaid with ``conf/<env>``, then with ``conf/portfolio``'s parameters (the
    universe's account and ``evaluation.scheme: portfolio``): what ``kedro run --env portfolio``
    reads, with ``--env quick``'s budgets when asked."""
    return deep_merge(parameters(env), yaml.safe_load(UNIVERSE_OVERLAY.read_text()))


def universe_markets(kinds, seeds, null_seeds, n_assets: int) -> list:
    """Every kind of ``kinds`` for every seed, then a null universe per null seed: ``n_assets``
    tickers of the 20-stock close panel (chosen by the seed), on the panel's dates."""
    close = read_universe_csv(UNIVERSE_SOURCE).field("Close")
    options = {k: {"n_assets": n_assets} for k in [*UNIVERSE_KINDS, "null"]}
    return planted_suite(close, seeds=seeds, null_seeds=null_seeds, kinds=kinds, options=options)


def universe_table(studies: list[dict]) -> str:
    """The procedure's stitched record against equal weight held (the gate's reference) and the
    market's rule on the same rows."""
    lines = [
        "| universe | procedure Sharpe | − EW | exposure / EW's | turnover / year | max drawdown | "
        "EW Sharpe | EW max drawdown | rule Sharpe | rule turnover / year | gate | wall s |",
        "|" + " --- |" * 12,
    ]
    for s in studies:
        gate = "PASS" if s["passed"] else "fail (" + ", ".join(s["failed_rules"]) + ")"
        lines.append(
            f"| {s['market']} | {s['procedure_sharpe']:.2f} | "
            f"{s['procedure_sharpe'] - s['equal_weight_sharpe']:+.2f} | "
            f"{s['procedure_avg_gross_exposure'] / s['equal_weight_avg_gross_exposure']:.0%} | "
            f"{s['procedure_annual_turnover']:.1f} | {s['procedure_max_drawdown']:.1%} | "
            f"{s['equal_weight_sharpe']:.2f} | {s['equal_weight_max_drawdown']:.1%} | "
            f"{s['rule_sharpe']:.2f} | {s['rule_annual_turnover']:.1f} | {gate} | {s['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def universe_counts(studies: list[dict]) -> str:
    """The gate on planted and null universes, and the do-no-harm band on the null ones."""
    planted = [s for s in studies if s["kind"] != "null"]
    null = [s for s in studies if s["kind"] == "null"]
    bands = [
        harm(
            s["procedure_sharpe"],
            s["procedure_avg_gross_exposure"],
            s["procedure_annual_turnover"],
            s["equal_weight_sharpe"],
            s["equal_weight_avg_gross_exposure"],
        )
        for s in null
    ]
    parts = []
    if planted:
        parts.append(
            f"The gate passed on **{sum(s['passed'] for s in planted)} of {len(planted)}** planted universes."
        )
    if null:
        parts.append(
            f"On null universes it passed on **{sum(s['passed'] for s in null)} of {len(null)}**. "
            + harm_sentence(bands, "the procedure's", "equal weight's", "gross exposure")
        )
    return " ".join(parts)


def render_universes(studies: list[dict], env: str | None, command: str, seconds: float) -> str:
    first = studies[0]["window"] if studies else {"start": "?", "end": "?"}
    return "\n\n".join(
        [
            f"Measured with `{command}` on {platform.machine()}, {os.cpu_count()} CPU core(s), "
            f"{torch.get_num_threads()} torch thread(s); {len(studies)} universes in "
            f"{seconds / 60:.1f} min. Stitched record {first['start']} .. {first['end']}; EW = equal "
            "weight bought and held; exposure = mean gross exposure; costs, capital and fills "
            "(next close) are the universe's account (`conf/portfolio`).",
            universe_table(studies),
            universe_counts(studies),
        ]
    )


def run_universes(args) -> None:
    params = universe_parameters(args.env)
    params["portfolio"]["training"]["progress"] = False
    markets = universe_markets(
        args.universe_kinds, args.universe_seeds, args.universe_null_seeds, args.n_assets
    )
    start, studies = time.perf_counter(), []
    for market in markets:
        studies.append(study_universe(market, params))
        s = studies[-1]
        print(
            f"{s['market']:>18}: procedure {s['procedure_sharpe']:.2f}, equal weight "
            f"{s['equal_weight_sharpe']:.2f}, rule {s['rule_sharpe']:.2f}, "
            f"{'PASS' if s['passed'] else 'fail'} ({s['wall_s']:.0f} s)",
            flush=True,
        )
    command = "python benchmarks/bench_learning.py " + " ".join(sys.argv[1:])
    text = render_universes(studies, args.env, command.replace(" --write", ""), time.perf_counter() - start)
    print(text)
    if args.write:
        write(text, UNIVERSE_MARKERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=None, help="conf/<ENV> overlay, e.g. quick (default: conf/base)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--null-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kinds", nargs="+", default=list(PLANTED_KINDS), choices=PLANTED_KINDS)
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument("--universes", action="store_true", help="run the planted and null universes")
    parser.add_argument("--universe-kinds", nargs="*", default=list(UNIVERSE_KINDS), choices=UNIVERSE_KINDS)
    parser.add_argument("--universe-seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--universe-null-seeds", type=int, nargs="*", default=[1, 2, 3, 4])
    parser.add_argument("--n-assets", type=int, default=5, help="tickers per universe (of the 20)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("kedro").setLevel(logging.WARNING)
    if args.universes:
        run_universes(args)
        return
    params = parameters(args.env)
    params["training"]["common"]["progress"] = False
    markets = planted_suite(source_prices(), seeds=args.seeds, null_seeds=args.null_seeds, kinds=args.kinds)
    start, studies = time.perf_counter(), []
    for market in markets:
        studies.append(study_market(market, params))
        s = studies[-1]
        print(
            f"{s['market']:>15}: rule {s['rule']:.2f}, champion {s['champion']} {s['champion_test']}, "
            f"{'PASS' if s['passed'] else 'fail'} ({s['wall_s']:.0f} s)",
            flush=True,
        )
    text = render(studies, args.env, time.perf_counter() - start)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
