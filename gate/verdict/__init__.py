"""The verdict: paired statistics of baseline vs quantized, non-inferiority, sequential looks.

Modules:

- ``stats``: ``PairedScores``, the vectorised paired bootstrap, the paired score interval for
  binary scores (Tango; McNemar's test at zero margin), ``bootstrap_mean_ci``.
- ``intervals``: the bounds the verdict decides with, vectorised: the score test of a relative
  change on the paired 2x2 table, the skewness-corrected t bound on linearised influence values,
  the decision level, the Student t distribution.
- ``decide``: ``compare_metric`` (one metric against its tolerance) and ``decide`` (the verdict,
  intersection-union over the criteria).
- ``sample_size``: the decision floor, ``check_resolvable``, ``measured_n_needed`` (from data),
  ``schedule_looks`` (no look below the floor) and the power ``gate check`` shows.
- ``sequential``: ``LookSchedule`` (fixed looks, Lan-DeMets alpha spending) and ``decide_look``.

numpy only: nothing here imports torch, transformers, lm-eval or scipy.
"""

from __future__ import annotations
