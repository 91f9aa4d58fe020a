"""Plain helpers shared by the tests (no fixtures: those live in the conftest.py files).

One module per topic: ``project`` (paths into the checkout, the project's catalog),
``deployment_world`` (a real deployment folder in tmp), ``prices`` (synthetic bars and the
real S&P 500 frame), ``training`` (tiny budgets and model-input tables), ``evaluation``
(policy bundles and histories for the evaluation stage), ``ledger`` (an independent ledger
simulator), ``env`` (small synthetic markets).
"""
