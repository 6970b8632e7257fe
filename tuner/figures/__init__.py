"""Heatmap figures: one per trial for the dashboard, and the report's comparison of methods."""
