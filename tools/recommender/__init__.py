"""Recommender research tools: offline evaluation, demo data, synthetic data with a known answer."""
