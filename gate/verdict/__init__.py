"""The verdict: paired statistics of baseline vs quantized, non-inferiority, sequential looks.

Modules:

- ``stats``: ``PairedScores``, the vectorised paired bootstrap, the paired score interval for
  binary scores (Tango; McNemar's test at zero margin), ``bootstrap_mean_ci``.
- ``decide``: ``compare_metric`` (one metric against its tolerance) and ``decide`` (the verdict).
- ``sample_size``: ``check_resolvable`` (can this eval set resolve this tolerance at all?).
- ``sequential``: ``SequentialPlan`` (fixed looks, Lan-DeMets alpha spending) and ``decide_look``.

numpy only: nothing here imports torch, transformers, lm-eval or scipy.
"""

from __future__ import annotations
