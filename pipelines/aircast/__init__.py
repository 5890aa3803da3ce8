"""The aircast model-build pipeline (DeepAR on curated hourly air-quality series)."""
