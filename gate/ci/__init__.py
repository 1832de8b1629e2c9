"""CI fan-out, what ``gate plan`` prints: which specs a change selects (``changes``; policy changes
in ``policy_changes``) and the GitHub Actions matrix that runs them (``matrix``). Torch-free."""
