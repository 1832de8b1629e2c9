"""Onboarding: ``gate init`` writes a first spec for a model, following SCALE, from its own files,
the hardware catalog and the org's policy defaults."""
