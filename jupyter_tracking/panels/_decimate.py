"""Display-side reduction of step series for the live panel: bounded min/max buckets and subplot grouping.

``SeriesDecimator`` takes points incrementally (numpy, per chunk, never per point) and keeps at most
``capacity`` buckets, each remembering its lowest and highest point, so spikes and dips survive however
long the series grows. ``group_metrics`` decides which metrics share a subplot. Nothing here writes runs:
the store keeps every point; this only shapes what is drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

DEFAULT_CAPACITY = 400  # buckets per series: at most ~2 * capacity + 3 points drawn
POINT_BUDGET = 8000  # points drawn per redraw over all series (many metrics share it, >= 200 each)


class SeriesDecimator:
    """Keeps a bounded, extreme-preserving summary of one series, fed with chunks of new points.

    Each bucket covers consecutive points (in arrival order) and keeps its minimum and its maximum;
    when there are more than ``capacity`` buckets, neighbours are merged pairwise. The first and the
    latest point are always kept. ``points()`` returns ``(steps, values, times)`` as float64 arrays.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError("capacity must be >= 2")
        self.capacity = capacity
        self.width = 1  # raw points per new bucket
        self.count = 0  # raw points seen
        # Bucket extremes, shape (n, 2): column 0 and 1 are the two kept points, in arrival order.
        self._idx = np.empty((0, 2), dtype=np.int64)
        self._step = np.empty((0, 2))
        self._value = np.empty((0, 2))
        self._time = np.empty((0, 2))
        # Raw points not yet filling a bucket.
        self._p_idx = np.empty(0, dtype=np.int64)
        self._p_step = np.empty(0)
        self._p_value = np.empty(0)
        self._p_time = np.empty(0)
        self._first: tuple[int, float, float, float] | None = None
        self._last: tuple[int, float, float, float] | None = None
        self.min_value = np.inf
        self.max_value = -np.inf

    # ------------------------------------------------------------------ input
    def extend(self, steps, values, times) -> None:
        """Add a chunk of points (sequences of equal length, in arrival order)."""
        n = len(values)
        if n == 0:
            return
        step = np.asarray(steps, dtype=np.float64)
        value = np.asarray(values, dtype=np.float64)
        time = np.asarray(times, dtype=np.float64)
        idx = np.arange(self.count, self.count + n, dtype=np.int64)
        if self._first is None:
            self._first = (int(idx[0]), float(step[0]), float(value[0]), float(time[0]))
        self._last = (int(idx[-1]), float(step[-1]), float(value[-1]), float(time[-1]))
        self.count += n
        finite = value[np.isfinite(value)]
        if finite.size:
            self.min_value = min(self.min_value, float(finite.min()))
            self.max_value = max(self.max_value, float(finite.max()))

        p_idx = np.concatenate([self._p_idx, idx])
        p_step = np.concatenate([self._p_step, step])
        p_value = np.concatenate([self._p_value, value])
        p_time = np.concatenate([self._p_time, time])
        width = self.width
        full = len(p_idx) // width
        if full:
            cut = full * width
            self._append_buckets(
                p_idx[:cut].reshape(full, width), p_step[:cut].reshape(full, width),
                p_value[:cut].reshape(full, width), p_time[:cut].reshape(full, width),
            )
            p_idx, p_step, p_value, p_time = p_idx[cut:], p_step[cut:], p_value[cut:], p_time[cut:]
        self._p_idx, self._p_step, self._p_value, self._p_time = p_idx, p_step, p_value, p_time
        while len(self._idx) > self.capacity:
            self._merge_pairs()

    def _append_buckets(self, idx, step, value, time) -> None:
        lo, hi = _extreme_columns(value)
        rows = np.arange(len(value))
        first = np.minimum(lo, hi)
        second = np.maximum(lo, hi)
        pick = np.stack([first, second], axis=1)
        self._idx = np.concatenate([self._idx, idx[rows[:, None], pick]])
        self._step = np.concatenate([self._step, step[rows[:, None], pick]])
        self._value = np.concatenate([self._value, value[rows[:, None], pick]])
        self._time = np.concatenate([self._time, time[rows[:, None], pick]])

    def _merge_pairs(self) -> None:
        n = len(self._idx)
        even = n - (n % 2)
        tail = slice(even, n)
        merged = [a[:even].reshape(even // 2, 4) for a in (self._idx, self._step, self._value, self._time)]
        keep_tail = [a[tail] for a in (self._idx, self._step, self._value, self._time)]
        self._append_buckets_from(merged)
        self._idx = np.concatenate([self._idx, keep_tail[0]])
        self._step = np.concatenate([self._step, keep_tail[1]])
        self._value = np.concatenate([self._value, keep_tail[2]])
        self._time = np.concatenate([self._time, keep_tail[3]])
        self.width *= 2

    def _append_buckets_from(self, merged) -> None:
        idx, step, value, time = merged
        lo, hi = _extreme_columns(value)
        rows = np.arange(len(value))
        a = idx[rows, lo]
        b = idx[rows, hi]
        first = np.where(a <= b, lo, hi)
        second = np.where(a <= b, hi, lo)
        pick = np.stack([first, second], axis=1)
        self._idx = idx[rows[:, None], pick]
        self._step = step[rows[:, None], pick]
        self._value = value[rows[:, None], pick]
        self._time = time[rows[:, None], pick]

    # ------------------------------------------------------------------ output
    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points to draw, in arrival order: ``(steps, values, times)``."""
        if self._first is None:
            empty = np.empty(0)
            return empty, empty.copy(), empty.copy()
        parts_idx = [np.array([self._first[0]]), self._idx.ravel()]
        parts_step = [np.array([self._first[1]]), self._step.ravel()]
        parts_value = [np.array([self._first[2]]), self._value.ravel()]
        parts_time = [np.array([self._first[3]]), self._time.ravel()]
        if len(self._p_idx):
            lo, hi = _extreme_columns(self._p_value[None, :])
            pick = np.unique(np.array([lo[0], hi[0]]))
            parts_idx.append(self._p_idx[pick])
            parts_step.append(self._p_step[pick])
            parts_value.append(self._p_value[pick])
            parts_time.append(self._p_time[pick])
        last = self._last
        parts_idx.append(np.array([last[0]]))
        parts_step.append(np.array([last[1]]))
        parts_value.append(np.array([last[2]]))
        parts_time.append(np.array([last[3]]))
        idx = np.concatenate(parts_idx)
        _, order = np.unique(idx, return_index=True)  # sorted by raw index, duplicates dropped
        return (
            np.concatenate(parts_step)[order],
            np.concatenate(parts_value)[order],
            np.concatenate(parts_time)[order],
        )

    @property
    def last(self) -> tuple[float, float, float] | None:
        """``(step, value, time)`` of the latest point, or None."""
        return None if self._last is None else self._last[1:]


def reduce_points(steps: np.ndarray, values: np.ndarray, times: np.ndarray, budget: int):
    """At most about ``budget`` points: min/max of equal groups (extremes, first and last point kept)."""
    n = len(values)
    if n <= budget or budget < 4:
        return steps, values, times
    groups = max(1, (budget - 2) // 2)
    edges = np.linspace(1, n - 1, groups + 1).astype(np.int64)
    keep = [0, n - 1]
    for start, end in zip(edges[:-1], edges[1:]):
        if end <= start:
            continue
        lo, hi = _extreme_columns(values[None, start:end])
        keep.extend((start + int(lo[0]), start + int(hi[0])))
    index = np.unique(np.array(keep, dtype=np.int64))
    return steps[index], values[index], times[index]


def _extreme_columns(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column of the minimum and of the maximum in each row, ignoring NaN (an all-NaN row gives column 0)."""
    nan = np.isnan(value)
    lo = np.where(nan, np.inf, value).argmin(axis=1)
    hi = np.where(nan, -np.inf, value).argmax(axis=1)
    return lo, hi


# ---------------------------------------------------------------------- grouping into subplots
_SPLITS = ("train", "training", "val", "valid", "validation", "test", "eval", "dev", "tr", "te")
_SPLIT_RE = re.compile(r"^(?:%s)(?:[_\-./: ]+)|(?:[_\-./: ]+)(?:%s)$" % ("|".join(_SPLITS), "|".join(_SPLITS)))
_TOKEN_RE = re.compile(r"[_\-./: ]+")
_ACCURACY_TOKENS = {"acc", "accuracy", "f1", "precision", "recall", "auc", "roc", "iou", "dice", "map", "r2",
                    "score", "top1", "top5", "bleu", "rouge"}
_ERROR_TOKENS = {"mse", "rmse", "mae", "mape", "error", "err", "nll", "perplexity", "ppl"}
MAX_SUBPLOTS = 6


@dataclass(frozen=True)
class MetricGroup:
    """One subplot: a stable id, a title, its metric keys, and whether x is always elapsed time."""

    id: str
    title: str
    keys: tuple[str, ...]
    time_only: bool = False

    @property
    def rising(self) -> bool:
        """Values that climb to the top right (accuracy): legends go bottom right, out of the curves' way."""
        return self.id == "accuracy"


def metric_stem(key: str) -> str:
    """``train_loss`` -> ``loss``; ``val/acc`` -> ``acc``: the key without its split (train/val/test) part."""
    lowered = key.lower()
    stripped = _SPLIT_RE.sub("", lowered)
    return stripped or lowered


def group_of(key: str) -> tuple[str, str, bool]:
    """``(group id, title, time_only)`` for one metric key."""
    lowered = key.lower()
    if lowered.startswith("system/"):
        name = lowered[len("system/"):]
        if "percent" in name or "utilization" in name:
            return "system:percent", "system utilisation (%)", True
        return "system:memory", "system memory (MB)", True
    stem = metric_stem(key)
    tokens = [t for t in _TOKEN_RE.split(stem) if t]
    if any(t.endswith("loss") for t in tokens):
        return "loss", "loss", False
    if any(t in _ACCURACY_TOKENS or t.startswith("acc") for t in tokens):
        return "accuracy", "accuracy", False
    if any(t in _ERROR_TOKENS for t in tokens):
        return "error:" + stem, stem, False
    if "/" in key:
        prefix = key.split("/", 1)[0]
        return "prefix:" + prefix.lower(), prefix, False
    token = tokens[0] if tokens else stem
    return "prefix:" + token, token, False


def group_metrics(keys, max_subplots: int = MAX_SUBPLOTS) -> list[MetricGroup]:
    """Metric keys -> subplots, in a stable order (loss, accuracy, others by first appearance, system last).

    More groups than ``max_subplots`` are folded into one "other" subplot.
    """
    groups: dict[str, tuple[str, list[str], bool]] = {}
    for key in keys:
        gid, title, time_only = group_of(key)
        groups.setdefault(gid, (title, [], time_only))[1].append(key)

    def rank(gid: str) -> tuple[int, int]:
        order = list(groups)
        if gid == "loss":
            return (0, 0)
        if gid == "accuracy":
            return (1, 0)
        if gid.startswith("system:"):
            return (3, order.index(gid))
        return (2, order.index(gid))

    ordered = sorted(groups, key=rank)
    plain = [g for g in ordered if not groups[g][2]]
    system = [g for g in ordered if groups[g][2]]
    room = max(1, max_subplots - len(system))
    if len(plain) > room:
        keep, fold = plain[: room - 1], plain[room - 1:]
        other_keys = [k for g in fold for k in groups[g][1]]
        groups["other"] = ("other", other_keys, False)
        plain = keep + ["other"]
    return [MetricGroup(g, groups[g][0], tuple(groups[g][1]), groups[g][2]) for g in plain + system]
