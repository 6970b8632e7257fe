"""The evidence behind a study's answer: held-out scores, statistics, the robustness panel, reference rows, the
report's files and figures, the dashboard's note and artifacts, and the provenance of model and data."""
