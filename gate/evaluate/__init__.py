"""The evaluation stage: lm-eval tasks (harness, suites), fidelity, performance, baseline cache.

``plan`` fixes what a spec evaluates, ``session`` runs one model against it, ``gate.pipeline.run`` wires the
stages. Nothing here imports torch or lm-eval at module level.
"""
