"""Loading a preset's parts: image folders, preprocessing from normalisation statistics, weights."""
