"""The robustness panel: its metrics and what they say (:mod:`._panel`), scored within a time budget
(:mod:`._scoring`)."""
