"""Governance: the concern detectors (shipped rules, server rules, self-flags, the judge) and the moderation gate."""
