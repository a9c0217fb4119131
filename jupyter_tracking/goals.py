"""Which way a metric improves: the one rule behind the run card, ``best``, ``--grid``, the panels and the
JupyterLab extension (which reads the answer from the card's JSON, never a copy of the rule).

``metric_goal(key, overrides)`` is ``"min"`` (losses, errors, times), ``"max"`` (accuracies, scores, rewards,
throughput) or ``None`` when the name says nothing sure: unknown names are shown neutral and never guessed.
The name is read word by word (``val_loss``, ``valLoss``, ``eval/accuracy``, ``Loss/train``), so look-alikes
stay apart (``timestep`` is not a time, ``tokens_per_second`` is a throughput, ``neg_mse`` improves upwards).
Overrides come from ``--best-by METRIC:max`` and from experiment tags ``jupyter_tracking.goal.METRIC`` that
``%track config --goal METRIC:max`` / ``jt.configure(goals=...)`` set; they win over the rule.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Goal = Literal["min", "max"]
GOALS = ("min", "max")
GOAL_TAG_PREFIX = "jupyter_tracking.goal."
RESET = "auto"  # ``--goal reward:auto`` removes an override

# Words (after splitting the name) that decide on their own. A name whose words disagree is unknown.
_DOWN = frozenset("""
    loss losses nll logloss xent error errors err mse rmse mae mape smape msle rmsle wape mad deviance
    perplexity ppl bpc bpd bpb wer cer ter fpr fnr fdr eer ece mce regret cost costs penalty latency latencies
    duration time times runtime walltime elapsed seconds secs sec ms msec minutes hours fid kid lpips chamfer
    rank davies bouldin violations distance
""".split())
_UP = frozenset("""
    accuracy accuracies acc accu precision prec recall sensitivity specificity tpr tnr ppv npv f1 f2 fbeta fscore
    auc auroc auprc roc map ap ap50 ap75 aps apm apl mrr ndcg dcg hit hits hitrate
    reward rewards rew return returns ret r2 rsquared bleu sacrebleu rouge chrf meteor cider bertscore
    iou miou dice jaccard psnr ssim mcc kappa
    corr correlation pearson pearsonr spearman spearmanr throughput fps sps qps speedup elbo likelihood
    loglikelihood loglik win wins success solved pass gain utility profit revenue efficiency inception
""".split())
# Decide only when no word above does: ``score`` (sklearn scorers, ``f1_score``) and ``top`` (``top1``) say "up"
# unless a stronger word says otherwise (``brier_score`` is an error, ``top5_err`` an error).
_WEAK_UP = frozenset({"score", "scores", "top"})
# Word pairs read together before single words (``false_negative`` is not a negation, ``cross_entropy`` a loss).
_PHRASES: dict[tuple[str, str], Goal] = {
    ("cross", "entropy"): "min", ("false", "positive"): "min", ("false", "positives"): "min",
    ("false", "negative"): "min", ("false", "negatives"): "min", ("miss", "rate"): "min",
    ("edit", "distance"): "min", ("true", "positive"): "max", ("true", "positives"): "max",
    ("true", "negative"): "max", ("true", "negatives"): "max", ("explained", "variance"): "max",
    ("exact", "match"): "max", ("reciprocal", "rank"): "max", ("average", "precision"): "max",
}
# A name holding one of these describes a spread or a change of a metric, not the metric: unknown.
_NOT_A_GOAL = frozenset("""
    std stddev stdev sd var variance sem stderr delta diff change gap scale norm grad gradient
""".split())
_NEGATIONS = frozenset({"neg", "negative"})
_TIME_UNITS = frozenset({"s", "sec", "secs", "second", "seconds", "ms", "msec", "min", "minute", "minutes",
                         "h", "hr", "hour", "hours", "us", "ns", "day", "days"})
# Segments that only name a split or an aggregation (``Loss/train``, ``accuracy/val``): look one segment up.
_SPLIT_WORDS = frozenset("""
    train training val valid validation test testing eval evaluation dev holdout oof cv mean avg average median
    final best last epoch step total overall macro micro weighted
""".split())
# Names that come with a variant glued on (``rougeL``, ``rougeLsum``, ``ndcg10``, ``bleu4``).
_FAMILIES = ("rouge", "bleu", "ndcg")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z0-9])(?=[A-Z][a-z])")
# Spellings that camel-case splitting would tear apart (``mAP50``, ``mIoU``, detectron2's ``APs``).
_MIXED_CASE = re.compile(r"mAP|mIoU|IoU|AP[sml](?![a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
# ``1-acc``, ``1 - accuracy``, ``one_minus_auc``: the complement of one metric word improves the other way.
_ONE_MINUS = re.compile(r"^\s*(?:1\s*-\s*|(?:1|one)[-_ ]?minus[-_ ]?)(?=[A-Za-z])", re.IGNORECASE)


def words_of(segment: str) -> list[str]:
    """``valLoss`` / ``val_loss`` / ``val-loss`` / ``val.loss`` -> ``["val", "loss"]`` (lower case)."""
    words = []
    segment = _MIXED_CASE.sub(lambda match: match.group(0).lower(), segment)
    for part in _SEPARATORS.split(segment):
        words.extend(piece.lower() for piece in _CAMEL.split(part) if piece)
    return words


def _known(word: str) -> str | None:
    """The vocabulary word ``word`` stands for: itself, without trailing digits (``top5``, ``map50``, ``f1``
    stays ``f1``), or its family (``rougel``); None if it is not a word of the rule."""
    for candidate in (word, word.rstrip("0123456789")):
        if candidate in _DOWN or candidate in _UP or candidate in _WEAK_UP:
            return candidate
    return next((family for family in _FAMILIES if word.startswith(family)), None)


def _goal_of_words(words: list[str]) -> Goal | None:
    """The goal that a list of words states, or None (no word of the rule, words that disagree, a spread)."""
    if "per" in words:
        # A count per unit of time is a throughput (up); a time per anything is a duration (down);
        # anything else per something (``loss_per_token``) goes by what is counted.
        at = words.index("per")
        before, after = words[:at], words[at + 1:]
        if after and after[0] in _TIME_UNITS and not any(_known(w) in _DOWN for w in before):
            return "max"
        words = before
    found: set[str] = set()
    weak = False
    negated = False
    index = 0
    while index < len(words):
        pair = tuple(words[index:index + 2])
        if pair in _PHRASES:
            found.add(_PHRASES[pair])  # type: ignore[index]
            index += 2
            continue
        word = words[index]
        index += 1
        if word in _NEGATIONS:
            negated = True
            continue
        if word in _NOT_A_GOAL:
            return None
        known = _known(word)
        if known in _DOWN:
            found.add("min")
        elif known in _UP:
            found.add("max")
        elif known in _WEAK_UP:
            weak = True
    if len(found) > 1:
        return None
    goal: Goal | None = found.pop() if found else ("max" if weak else None)  # type: ignore[assignment]
    if goal is not None and negated:
        goal = "max" if goal == "min" else "min"
    return goal


def rule_goal(key: str) -> Goal | None:
    """Which way ``key`` improves by its name alone (no overrides); see the module docstring."""
    key = key.strip().removeprefix("metrics.")
    segments = [s for s in key.split("/") if s.strip()]
    if not segments:
        return None
    if len(segments) >= 2 and all(w in _TIME_UNITS for w in words_of(segments[-1])):
        return _goal_of_words([*words_of(segments[-2]), "per", *words_of(segments[-1])])  # ``tokens/s``
    if len(segments) >= 2 and all(w in _TIME_UNITS for w in words_of(segments[-2])):
        return "min"  # ``s/it``, ``ms/step``: a time per thing
    # The last segment names the metric; earlier ones are namespaces (``system/``, ``rollout/``), read only
    # when the last one is just a split or an aggregation (``Loss/train``).
    for segment in reversed(segments):
        words = words_of(segment)
        rest = _ONE_MINUS.sub("", segment, count=1)
        flipped = rest != segment and len(words_of(rest)) == 1 and _known(words_of(rest)[0]) is not None
        if flipped:
            words = words_of(rest)
        if words and all(w in _SPLIT_WORDS or w.isdigit() for w in words):
            continue
        goal = _goal_of_words(words)
        if goal is not None and flipped:
            goal = "max" if goal == "min" else "min"
        return goal
    return None


def metric_goal(key: str, overrides: Mapping[str, str] | None = None) -> Goal | None:
    """``"min"``, ``"max"`` or ``None`` (unknown) for a metric: an override for exactly this name, then one
    whose pattern (``val_*``, ``*reward*``) matches, then the rule."""
    name = key.strip().removeprefix("metrics.")
    if overrides:
        exact = overrides.get(name)
        if exact in GOALS:
            return exact  # type: ignore[return-value]
        for pattern, goal in overrides.items():
            if goal in GOALS and any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(name, pattern):
                return goal  # type: ignore[return-value]
    return rule_goal(name)


# ---------------------------------------------------------------------------------------------- overrides


class GoalError(ValueError):
    """A goal override that is not ``METRIC:min``, ``METRIC:max`` or ``METRIC:auto``; one line."""


def parse_goal_overrides(items: Iterable[str] | str) -> dict[str, str]:
    """``["reward:max", "mrr:max,latency:min"]`` -> ``{"reward": "max", "mrr": "max", "latency": "min"}``.

    ``METRIC:auto`` maps to ``"auto"`` (remove the override, back to the rule).
    """
    if isinstance(items, str):
        items = [items]
    overrides: dict[str, str] = {}
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            metric, _, goal = part.rpartition(":")
            metric, goal = metric.strip().removeprefix("metrics."), goal.strip().lower()
            if not metric or goal not in (*GOALS, RESET):
                raise GoalError(f"--goal expects METRIC:min, METRIC:max or METRIC:auto, got {part.strip()!r}")
            overrides[metric] = goal
    return overrides


def check_overrides(goals: Mapping[str, Any]) -> dict[str, str]:
    """A ``goals`` mapping from the Python API, checked: names to ``"min"``/``"max"``/``"auto"``."""
    checked = {}
    for metric, goal in goals.items():
        text = str(goal).strip().lower() if goal is not None else RESET
        name = str(metric).strip().removeprefix("metrics.")
        if not name or text not in (*GOALS, RESET):
            raise GoalError(f"goals: {metric!r} must map to 'min', 'max' or 'auto', not {goal!r}")
        checked[name] = text
    return checked


def overrides_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The overrides stored on an experiment: tags ``jupyter_tracking.goal.METRIC = min|max``."""
    return {
        key[len(GOAL_TAG_PREFIX):]: value.strip().lower()
        for key, value in tags.items()
        if key.startswith(GOAL_TAG_PREFIX) and value.strip().lower() in GOALS
    }


def experiment_overrides(client: Any, experiment_ids: Iterable[str]) -> dict[str, str]:
    """The overrides of one or more experiments (the first experiment that sets a metric wins)."""
    merged: dict[str, str] = {}
    for experiment_id in experiment_ids:
        experiment = client.get_experiment(str(experiment_id))
        for metric, goal in overrides_from_tags(experiment.tags or {}).items():
            merged.setdefault(metric, goal)
    return merged


class OverridesCache:
    """Experiment overrides as one session last read them, so a run card does not cost a store query each time.

    Read again after ``max_age`` seconds (another kernel's ``%track config --goal`` shows by then) and at once
    after ``clear()`` (this session changed them).
    """

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._read: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    def get(self, client: Any, uri: str, experiment_id: str) -> dict[str, str]:
        import time

        key = (uri, str(experiment_id))
        cached = self._read.get(key)
        if cached is None or time.monotonic() - cached[0] > self.max_age:
            cached = (time.monotonic(), experiment_overrides(client, [experiment_id]))
            self._read[key] = cached
        return cached[1]

    def clear(self) -> None:
        self._read.clear()


def overrides_for(location: Any, experiment_name: str) -> dict[str, str]:
    """The overrides of the named experiment in a store ({} when it does not exist yet)."""
    from .store import client_for

    if location.not_created_yet:
        return {}  # a project without a store yet: nothing set, and a read does not create one
    experiment = client_for(location).get_experiment_by_name(experiment_name)
    return overrides_from_tags(experiment.tags or {}) if experiment is not None else {}


def store_overrides(location: Any, experiment_name: str, goals: Mapping[str, str]) -> dict[str, str]:
    """Save overrides as tags of the experiment (created if new); ``auto`` removes one. Returns them all now."""
    from .store import client_for, experiment_id_for

    client = client_for(location)
    experiment_id = experiment_id_for(location, experiment_name)
    current = overrides_from_tags(client.get_experiment(experiment_id).tags or {})
    for metric, goal in goals.items():
        if goal == RESET:
            if metric in current:
                client.delete_experiment_tag(experiment_id, GOAL_TAG_PREFIX + metric)
                del current[metric]
        else:
            client.set_experiment_tag(experiment_id, GOAL_TAG_PREFIX + metric, goal)
            current[metric] = goal
    return current


def describe_unknown(metric: str, options: str) -> str:
    """The one line for a metric whose goal is unknown where one is needed."""
    return (f"which way {metric!r} improves is unknown: {options}, "
            f"or set it for the experiment with %track config --goal {metric}:max (or :min)")
