"""Every HTML report escapes the strings users control (tickers, agent names, parameter values,
reasons, titles): a hostile name shows as text and never becomes an element or an attribute."""

from __future__ import annotations

from html.parser import HTMLParser
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from reinforce_strategy_creator.evaluation.report import metrics_table, render_html_report
from reinforce_strategy_creator.pipelines.portfolio import nodes as pn
from reinforce_strategy_creator.walk_forward.report import render_walk_forward_report

HOSTILE = {
    "img onerror": "<img src=x onerror=alert(1)>",
    "attribute break": '"><script>alert(1)</script>',
    "single-quote break": "'><img src=x onerror=alert(1)>",
    "entity": "<IMG SRC=X ONERROR=&#97;lert(1)>&#97;",
}


def _figure():
    fig, ax = plt.subplots()
    ax.plot([1.0, 2.0, 3.0])
    return fig


def _records(agent: str) -> pd.DataFrame:
    rows = [
        ("procedure", "procedure", 0, 0.91),
        ("agent_selected", agent, 0, 0.72),
        ("benchmark", "buy_and_hold", 0, 0.64),
        ("random", "random", 0, 0.1),
    ]
    return pd.DataFrame(rows, columns=["kind", "agent", "seed", "sharpe"]).assign(total_return=0.1)


def _folds(champion: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fold": ["fold_1"],
            "label": ["2016"],
            "champion": [champion],
            "validation_sharpe": [1.2],
            "procedure_test_sharpe": [1.1],
            "procedure_test_return": [0.2],
            "buy_and_hold_test_sharpe": [0.9],
            "buy_and_hold_test_return": [0.1],
        }
    )


def _verdict(s) -> dict:
    return {
        "passed": False,
        "rules": {"min_psr": {"value": 0.8, "threshold": 0.95, "comparison": ">=", "passed": False}},
        "decided_on": {"start": "2016-01-04", "end": "2016-12-30", "n_bars": 251},
        "pbo": {"pbo": None, "n_candidates": 1, "n_combinations": 0, "reason": s("pbo reason")},
        "dsr": {"value": 0.5, "n_trials": 2},
        "deflation": {"n_configurations": 1},
        "selection": {"rule": s("selection rule"), "checkpoint_evaluations": 4},
    }


def walk_forward(s, _monkeypatch):
    """The walk-forward tear sheet: agent names, the folds' champion, a parameter value, reasons."""
    page = render_walk_forward_report(
        _verdict(s),
        _records(s("agent")),
        _folds(s("fold champion")),
        _figure(),
        {"commission_bps": 2.0, "fill_price": s("parameter value")},
    )
    fields = ["agent", "fold champion", "parameter value", "pbo reason", "selection rule"]
    return page, fields, 2


def walk_forward_without_rules(s, _monkeypatch):
    """A verdict without rules says why in its reason."""
    verdict = {**_verdict(s), "rules": {}, "reason": s("verdict reason")}
    page = render_walk_forward_report(verdict, _records("ppo"), _folds("ppo"), _figure(), {})
    return page, ["verdict reason"], 2


def portfolio(s, monkeypatch):
    """The portfolio tear sheet: the universe's tickers (a universe column named like markup)."""
    monkeypatch.setattr(pn, "portfolio_figures", lambda record: (_figure(), _figure(), _figure()))
    monkeypatch.setattr(pn, "stitched_equity_figure", lambda record: _figure())
    record = SimpleNamespace(records=_records(s("agent")), folds=_folds(s("fold champion")))
    verdict = {**_verdict(s), "universe": ["AAPL", s("ticker"), "MSFT"]}
    page = pn.render_report(record, verdict, {})
    return page, ["ticker", "agent", "fold champion", "pbo reason", "selection rule"], 5


def _table(agent: str) -> pd.DataFrame:
    return metrics_table(pd.DataFrame({"agent": [agent, "ppo"], "seed": [0, 1], "sharpe": [1.0, 0.5]}))


def evaluation(s, _monkeypatch):
    """The evaluation report: title, description, periods, setup, tables, champion, figures, notes."""
    champion = {
        "agent": s("champion agent"),
        "member": s("champion member"),
        "rank_metric": "sharpe",
        "n_candidates": 3,
        "validation": {"sharpe": 1.0},
        "test": {"sharpe": 0.5},
    }
    page = render_html_report(
        title=s("title"),
        description=s("description"),
        periods={s("period"): {"start": "2016-01-04", "end": "2016-12-30", "bars": 251}},
        trading_setup={"commission_bps": 2.0, "fill_price": s("parameter value")},
        tables={s("table title"): _table(s("table agent"))},
        verdict={**_verdict(s), "decided_on": {"split": "test", "start": "2016-01-04", "end": "2016-12-30"}},
        champion=champion,
        figures={s("figure title"): _figure()},
        random_policy={"n_seeds": 3, "agent_percentiles": {s("random agent"): 50.0}},
        caveats=[s("caveat")],
        notes={s("table title"): s("note")},
    )
    fields = [
        "title",
        "description",
        "period",
        "parameter value",
        "table title",
        "table agent",
        "champion agent",
        "champion member",
        "figure title",
        "random agent",
        "caveat",
        "note",
    ]
    return page, fields, 1


def evaluation_without_champion(s, _monkeypatch):
    """No champion: the report says why, in the selection's reason."""
    page = render_html_report(
        title="Evaluation report",
        description="d",
        periods={},
        trading_setup={},
        tables={"t": _table("ppo")},
        verdict={"passed": False, "rules": {}},
        champion={"agent": None, "reason": s("no-champion reason")},
    )
    return page, ["no-champion reason"], 0


REPORTS = {
    f.__name__: f
    for f in (walk_forward, walk_forward_without_rules, portfolio, evaluation, evaluation_without_champion)
}


class _Page(HTMLParser):
    """The elements of a page, and its text and attribute values as a browser decodes them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.shown: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self.shown += [v for _, v in attrs if v]

    def handle_data(self, data):
        self.shown.append(data)


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("report", list(REPORTS))
def test_user_strings_are_text_not_markup(report, hostile, monkeypatch):
    def s(field: str) -> str:
        return f"[{field}]{hostile}"

    page, fields, n_images = REPORTS[report](s, monkeypatch)
    plt.close("all")
    parsed = _Page()
    parsed.feed(page)
    tags = [tag for tag, _ in parsed.elements]
    assert "script" not in tags
    images = [attrs for tag, attrs in parsed.elements if tag == "img"]
    assert len(images) == n_images, images
    for attrs in images:
        assert set(attrs) == {"alt", "src"} and attrs["src"].startswith("data:image/png;base64,"), attrs
    assert hostile not in page  # never as written
    shown = "".join(parsed.shown)
    for field in fields:  # each string reached the page, and reads as the user wrote it
        assert s(field) in shown, field
