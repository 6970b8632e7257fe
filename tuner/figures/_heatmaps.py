"""Figures of attributions for a paper and for the dashboard (matplotlib): one trial's samples, and the
comparison of methods that ``heatmaps.png`` holds.

Relevance is red where it speaks for the target class and blue where it speaks against it, on a colour scale
symmetric around zero (white), so that the sign is never hidden by the colour map. Images are shown as they
looked before normalisation where the input bounds are known (per-channel ``low``/``high``, the pixels 0 and 1
after normalisation), else stretched to their own range; sequences and tabular inputs are drawn as bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, imported at the first figure (not when the tuner is imported:
    its font-cache messages then go through the command line's logging, shown with ``--verbose`` only)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, also on a machine without a display
    import matplotlib.pyplot as plt

    return plt


CMAP = "bwr"
MASK_COLOUR = "#1a9e3f"  # the evidence outline: green, apart from the map's red and blue
DPI = 100


@dataclass
class Samples:
    """The samples a figure shows: inputs, their labels (or targets), the model's predictions."""

    inputs: torch.Tensor
    labels: Sequence[int]
    predictions: Sequence[int] | None = None
    bounds: tuple | None = None  # (low, high): the inputs' values of black and white, for display
    label_name: str = "label"  # "target" where the targets are the model's own predictions
    masks: torch.Tensor | None = None  # where the evidence is (bool, (N, H, W)): outlined on inputs and maps
    words: list[list[str]] | None = None  # token ids as text (padding dropped): drawn on their relevance's colour

    def caption(self, index: int) -> str:
        text = f"{self.label_name} {int(self.labels[index])}"
        if self.predictions is not None:
            text += f", predicted {int(self.predictions[index])}"
        return text


@dataclass
class Row:
    """One method in the comparison figure: its name, attributions of the shown samples, per-sample scores."""

    name: str
    attributions: torch.Tensor
    scores: Sequence[float] | None = None
    note: str = ""


def distinct_labels(labels: Sequence[int] | torch.Tensor, n: int) -> list[int]:
    """Indices of ``n`` samples whose labels differ where the data allows: the first sample of each class in
    order, then the first samples not chosen yet."""
    values = [int(v) for v in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)]
    chosen: list[int] = []
    seen: set[int] = set()
    for index, value in enumerate(values):
        if value not in seen and len(chosen) < n:
            chosen.append(index)
            seen.add(value)
    chosen += [index for index in range(len(values)) if index not in chosen][: n - len(chosen)]
    return sorted(chosen[:n], key=lambda index: values[index])


def display_bounds(explainers) -> tuple | None:
    """(low, high) per channel from the first explainer that holds them as tensors (a preset's normalisation);
    None where only the generic float bounds are known."""
    for explainer in explainers:
        low, high = getattr(explainer, "low", None), getattr(explainer, "high", None)
        if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
            return low, high
    return None


def is_image(inputs: torch.Tensor) -> bool:
    return inputs.ndim == 4 and inputs.shape[1] in (1, 3) and inputs.is_floating_point()


def display_images(inputs: torch.Tensor, bounds: tuple | None = None) -> np.ndarray:
    """(B, H, W) grey or (B, H, W, 3) colour values in 0..1: un-normalised with per-channel ``bounds`` (the values
    of black and white), else stretched per image to its own minimum and maximum."""
    x = inputs.detach().float().cpu()
    low, high = bounds if bounds is not None else (None, None)
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor) and low.numel() in (1, x.shape[1]):
        low, high = low.float().cpu().reshape(1, -1, 1, 1), high.float().cpu().reshape(1, -1, 1, 1)
        x = ((x - low) / (high - low)).clamp(0, 1)
    else:
        flat = x.flatten(1)
        minimum, maximum = flat.min(1).values.reshape(-1, 1, 1, 1), flat.max(1).values.reshape(-1, 1, 1, 1)
        x = (x - minimum) / (maximum - minimum).clamp_min(1e-12)
    return x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()


def relevance_maps(attributions: torch.Tensor) -> np.ndarray:
    """Per-sample maps: images summed over channels (B, H, W); anything else one value per position (B, L)."""
    relevance = attributions.detach().float().cpu()
    if relevance.ndim == 4:
        return relevance.sum(1).numpy()
    if relevance.ndim == 3:  # (B, L, E) embeddings: one value per position
        relevance = relevance.sum(2)
    return relevance.reshape(len(relevance), -1).numpy()


def symmetric_limit(maps: Sequence[np.ndarray]) -> float:
    """The colour scale's limit: the 99.5th percentile of |relevance| (one hot pixel does not wash out the rest)."""
    values = np.abs(np.concatenate([np.ravel(m) for m in maps]))
    limit = float(np.percentile(values, 99.5)) if values.size else 0.0
    return limit if limit > 0 else float(values.max(initial=0.0)) or 1.0


def sample_words(model: Any, inputs: torch.Tensor) -> list[list[str]] | None:
    """The shown token ids as text, where the model knows its vocabulary (a TextClassifier given one)."""
    words = getattr(model, "words", None)
    return words(inputs) if callable(words) and not inputs.is_floating_point() else None


def _draw_input(ax: Axes, samples: Samples, images: np.ndarray | None, index: int) -> None:
    if samples.words is not None:  # the text, wrapped; the evidence words in [brackets]
        import textwrap

        evidence = samples.masks[index].tolist() if samples.masks is not None else []
        shown = [f"[{w}]" if i < len(evidence) and evidence[i] else w for i, w in enumerate(samples.words[index])]
        lines = textwrap.wrap(" ".join(shown), 28)
        text = "\n".join(lines[:INPUT_LINES]) + (" ..." if len(lines) > INPUT_LINES else "")
        ax.text(0.0, 1.0, text, fontsize=8, va="top", ha="left", family="monospace")
        ax.axis("off")
    elif images is not None:
        ax.imshow(images[index], cmap="gray" if images.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest")
        _outline(ax, samples, index)
    else:
        values = samples.inputs[index].detach().float().cpu().reshape(-1).numpy()
        ax.bar(np.arange(len(values)), values, color="0.4", width=1.0)
        ax.set_xlim(-0.5, len(values) - 0.5)


def _outline(ax: Axes, samples: Samples, index: int, width: float = 2.0) -> None:
    """The evidence mask's outline on an image (nothing without masks), along the pixel edges between the mask and
    the rest."""
    from matplotlib.collections import LineCollection

    if samples.masks is None or samples.masks.ndim != 3:
        return
    ax.add_collection(LineCollection(mask_edges(samples.masks[index]), colors=MASK_COLOUR, linewidths=width))


def mask_edges(mask: torch.Tensor) -> list[list[tuple[float, float]]]:
    """The unit segments (in imshow's pixel coordinates) between a mask's true pixels and the rest or the border."""
    padded = np.pad(mask.detach().cpu().bool().numpy(), 1)
    vertical = np.argwhere(padded[1:-1, 1:] != padded[1:-1, :-1])  # (row, column edge) left of column c
    horizontal = np.argwhere(padded[1:, 1:-1] != padded[:-1, 1:-1])  # (row edge, column) above row r
    segments = [[(c - 0.5, r - 0.5), (c - 0.5, r + 0.5)] for r, c in vertical]
    return segments + [[(c - 0.5, r - 0.5), (c + 0.5, r - 0.5)] for r, c in horizontal]


def _draw_map(ax: Axes, relevance: np.ndarray, limit: float, image: bool, words: list[str] | None = None):
    """A relevance map (image), bars (sequence), or the tokens on their relevance's colour where ``words`` are
    given; returns the mappable for a colour bar."""
    from matplotlib.colors import Normalize

    plt = _pyplot()
    norm = Normalize(-limit, limit)
    if image:
        return ax.imshow(relevance, cmap=CMAP, norm=norm, interpolation="nearest")
    colours = plt.get_cmap(CMAP)(norm(relevance))
    if words is not None:  # the text, each token on its relevance's colour
        _draw_tokens(ax, words, colours)
        return plt.cm.ScalarMappable(norm=norm, cmap=CMAP)
    ax.bar(np.arange(len(relevance)), relevance, color=colours, width=1.0, edgecolor="0.3", linewidth=0.3)
    ax.axhline(0, color="0.3", linewidth=0.6)
    ax.set_ylim(-limit * 1.05, limit * 1.05)
    ax.set_xlim(-0.5, len(relevance) - 0.5)
    return plt.cm.ScalarMappable(norm=norm, cmap=CMAP)


#: lines of a text shown in the input row (the whole text is in each map)
INPUT_LINES = 10
#: the width of a monospace character in ems (DejaVu Sans Mono's 0.6, a little more for the boxes' padding): a
#: token's place follows from the characters before it
MONOSPACE_WIDTH = 0.66


def _draw_tokens(ax: Axes, words: list[str], colours: np.ndarray) -> None:
    """The tokens as wrapped monospace text, each on a box of its colour; a long text in smaller type (more
    characters a line, lines closer), so that it stays in its panel."""
    figure = ax.get_figure(root=True)
    assert figure is not None, "a token map is drawn on an axes of a figure"
    width = ax.get_position().width * figure.get_figwidth() * 72  # the panel's width in points
    for size in np.arange(7.0, 2.5, -0.5):
        per_line, step = max(8.0, width / (MONOSPACE_WIDTH * size)), 0.075 * size / 7
        places, column, line = [], 0, 0
        for word in words:
            if column and column + len(word) > per_line:
                column, line = 0, line + 1
            places.append((column, line))
            column += len(word) + 1
        if (line + 1) * step <= 1:
            break
    for word, colour, (column, line) in zip(words, colours, places):
        ax.text(column / per_line, 1 - step * line, word, fontsize=size, family="monospace", va="top", ha="left",
                bbox={"boxstyle": "square,pad=0.1", "facecolor": colour, "edgecolor": "none"})  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")


def _bare(ax: Axes, image: bool) -> None:
    if image:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.tick_params(labelsize=8)
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)


def trial_figure(
    samples: Samples,
    attributions: torch.Tensor,
    path: str | Path,
    *,
    title: str,
    scores: Sequence[float] | None = None,
    score_name: str = "score",
    details: Sequence[str] = (),
) -> Path:
    """One trial's figure (square, 1000 px): the inputs above their attribution maps, each map on its own
    symmetric colour scale with a colour bar, each sample's score; the title names the configuration and the
    trial's value, ``details`` (e.g. one parameter a line) fill the panel below."""
    n = max(1, len(samples.inputs))
    image = is_image(samples.inputs)
    images = display_images(samples.inputs, samples.bounds) if image else None
    maps = relevance_maps(attributions)
    caption_size = min(12.0, 50 / n)  # "target 713, predicted 713" fits its column
    if images is not None:
        fig = _pyplot().figure(figsize=(10, 10), dpi=DPI)
        fig.suptitle(title, fontsize=15, y=0.995, va="top")
        tops, bottoms, bars, text = _image_panels(fig, n, images.shape[1] / images.shape[2])
    else:
        fig = _pyplot().figure(figsize=(10, 10), dpi=DPI, layout="constrained")
        fig.suptitle(title, fontsize=15)
        grid = fig.add_gridspec(3, n, height_ratios=[1.0, 1.2, 0.8])
        below = grid[1, :].subgridspec(2, n, hspace=0.06, height_ratios=[1.0, 0.04])  # maps, colour bars
        tops = [fig.add_subplot(grid[0, i]) for i in range(n)]
        bottoms = [fig.add_subplot(below[0, i]) for i in range(n)]
        bars = [fig.add_subplot(below[1, i]) for i in range(n)]
        text = fig.add_subplot(grid[2, :])
    for index in range(len(samples.inputs)):
        top, bottom = tops[index], bottoms[index]
        _draw_input(top, samples, images, index)
        _bare(top, image)
        top.set_title(samples.caption(index), fontsize=caption_size)
        words = None if samples.words is None else samples.words[index]
        mappable = _draw_map(bottom, maps[index], symmetric_limit([maps[index]]), image, words)
        _outline(bottom, samples, index, width=1.2)
        _bare(bottom, image)
        if scores is not None:
            bottom.set_title(f"{score_name} {scores[index]:.3f}", fontsize=caption_size)
        bar = fig.colorbar(mappable, cax=bars[index], orientation="horizontal")
        bar.ax.tick_params(labelsize=9, rotation=30)
        _scientific(bar)
    text.axis("off")
    if details:
        half = math.ceil(len(details) / 2)
        for column, lines in enumerate((details[:half], details[half:])):
            text.text(0.02 + 0.5 * column, 1.0, "\n".join(lines), fontsize=12, va="top", ha="left", family="monospace")
    return _save(fig, path)


def _image_panels(fig: Figure, n: int, aspect: float) -> tuple[list[Axes], list[Axes], list[Axes], Axes]:
    """The axes of a trial figure of ``n`` images of ``aspect`` (height over width), placed by arithmetic: the
    images as large as the columns and the two rows allow, the maps on their colour bars, the details below.
    matplotlib's constrained layout would find the same places at as much cost again as drawing the figure, and
    every trial draws one."""
    top, lowest, gap = 0.895, 0.2, 0.01  # under the two-line title; above the details; between columns
    caption, bar, bar_gap, bar_labels = 0.045, 0.02, 0.008, 0.07  # a map's score; its colour bar, gap, ticks
    width = (1 - 2 * 0.005 - (n - 1) * gap) / n
    height = min(width * aspect, (top - lowest - caption - bar_gap - bar - bar_labels) / 2)
    width = height / aspect
    left = (1 - n * width - (n - 1) * gap) / 2  # centred where the rows limit the images' size
    columns = [left + i * (width + gap) for i in range(n)]
    map_bottom = top - 2 * height - caption
    tops = [fig.add_axes((x, top - height, width, height)) for x in columns]
    maps = [fig.add_axes((x, map_bottom, width, height)) for x in columns]
    bars = [fig.add_axes((x, map_bottom - bar_gap - bar, width, bar)) for x in columns]
    details_top = map_bottom - bar_gap - bar - bar_labels
    return tops, maps, bars, fig.add_axes((0.0, 0.0, 1.0, details_top))


def comparison_figure(
    samples: Samples, rows: Sequence[Row], path: str | Path, *, title: str = "", score_name: str = "score"
) -> Path:
    """``heatmaps.png``: the inputs in the first row, then one row per method (its name, mean score and note on
    the left, each sample's score above its map). Each map is relevance as a share of its own total |relevance|,
    so methods of different magnitudes compare; each column (sample) has one symmetric colour scale and bar. Where
    the samples have evidence masks, a green line outlines the evidence on each input and map."""
    n = len(samples.inputs)
    image = is_image(samples.inputs)
    images = display_images(samples.inputs, samples.bounds) if image else None
    shares = [_shares(relevance_maps(row.attributions)) for row in rows]
    limits = [symmetric_limit([share[column] for share in shares]) for column in range(n)]
    height = 1.0 + 2.1 * (len(rows) + 1) + 0.6
    fig = _pyplot().figure(figsize=(4.2 + 2.3 * n, height), dpi=DPI, layout="constrained")
    if title:
        fig.suptitle(title, fontsize=14)
    grid = fig.add_gridspec(
        len(rows) + 2, n + 1, width_ratios=[1.9] + [1.0] * n, height_ratios=[1] * (len(rows) + 1) + [0.12]
    )
    evidence = "green outline: the evidence mask" if samples.masks is not None and image else ""
    if samples.masks is not None and samples.words is not None:
        evidence = "[brackets]: the evidence words"
    _row_label(fig.add_subplot(grid[0, 0]), "input", evidence)
    for column in range(n):
        ax = fig.add_subplot(grid[0, column + 1])
        _draw_input(ax, samples, images, column)
        _bare(ax, image)
        ax.set_title(samples.caption(column), fontsize=11)
    mappables = [None] * n
    for number, (row, share) in enumerate(zip(rows, shares), start=1):
        _row_label(fig.add_subplot(grid[number, 0]), row.name, row.note)
        for column in range(n):
            ax = fig.add_subplot(grid[number, column + 1])
            words = None if samples.words is None else samples.words[column]
            mappables[column] = _draw_map(ax, share[column], limits[column], image, words)
            _outline(ax, samples, column, width=1.2)
            _bare(ax, image)
            if row.scores is not None:
                ax.set_title(f"{row.scores[column]:.3f}", fontsize=10, pad=2)
    for column, mappable in enumerate(mappables):
        if mappable is not None:
            bar = fig.colorbar(mappable, cax=fig.add_subplot(grid[-1, column + 1]), orientation="horizontal")
            bar.ax.tick_params(labelsize=8, rotation=30)
            _scientific(bar)
    _row_label(fig.add_subplot(grid[-1, 0]), "share of |relevance|", "")
    return _save(fig, path)


def _scientific(bar) -> None:
    """A colour bar's ticks with a common power of ten where the values are small or large."""
    formatter = bar.formatter
    if hasattr(formatter, "set_powerlimits"):
        formatter.set_powerlimits((-2, 3))
        bar.update_ticks()


def _shares(maps: np.ndarray) -> np.ndarray:
    total = np.abs(maps).reshape(len(maps), -1).sum(1)
    return maps / np.where(total > 0, total, 1.0).reshape((-1,) + (1,) * (maps.ndim - 1))


def _row_label(ax: Axes, name: str, note: str) -> None:
    ax.axis("off")
    ax.text(0.0, 0.55, name, fontsize=11, fontweight="bold", va="bottom", ha="left", wrap=True, transform=ax.transAxes)
    if note:
        ax.text(0.0, 0.5, note, fontsize=9, va="top", ha="left", wrap=True, transform=ax.transAxes)


def _save(fig, path: str | Path) -> Path:
    """Write ``fig``; a PNG at zlib's fastest level (a 1000 px figure: 4x faster to write than the default, 5 %
    larger), as every trial writes one."""
    path = Path(path)
    png = path.suffix.lower() == ".png"
    fig.savefig(path, dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1} if png else None)
    _pyplot().close(fig)
    return path
