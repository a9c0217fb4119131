"""The one rule for which way a metric improves (goals.py): metric names as real ML code logs them."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from jupyter_tracking import goals, queries, sweep
from jupyter_tracking.panels.card import BAD, GOOD, MIME_TYPE, MUTED, Comparison, card_data, render_html, render_text
from jupyter_tracking.recorder import RunSummary
from tests.stores import runs_of, store_client

EXPERIMENT = "goals"  # the default experiment of the `shell` fixture (conftest.py)

# (metric name as logged, where it comes from, expected goal). None: the name says nothing sure.
METRICS = [
    # Keras History / callbacks
    ("loss", "keras", "min"),
    ("val_loss", "keras", "min"),
    ("accuracy", "keras", "max"),
    ("val_accuracy", "keras", "max"),
    ("sparse_categorical_accuracy", "keras", "max"),
    ("val_top_k_categorical_accuracy", "keras", "max"),
    ("mean_absolute_error", "keras", "min"),
    ("val_mean_squared_error", "keras", "min"),
    ("val_auc", "keras", "max"),
    ("lr", "keras", None),
    # Hugging Face Trainer
    ("eval_loss", "transformers", "min"),
    ("eval_runtime", "transformers", "min"),
    ("eval_samples_per_second", "transformers", "max"),
    ("eval_steps_per_second", "transformers", "max"),
    ("train_runtime", "transformers", "min"),
    ("total_flos", "transformers", None),
    ("grad_norm", "transformers", None),
    ("learning_rate", "transformers", None),
    ("epoch", "transformers", None),
    ("eval_exact_match", "transformers squad", "max"),
    ("eval_rougeL", "transformers summarization", "max"),
    ("eval_bleu", "transformers translation", "max"),
    ("eval_gen_len", "transformers", None),
    ("eval_wer", "transformers asr", "min"),
    # PyTorch Lightning / torchmetrics / TensorBoard tags
    ("train_loss_step", "lightning", "min"),
    ("train_loss_epoch", "lightning", "min"),
    ("val/acc", "lightning", "max"),
    ("hp_metric", "lightning", None),
    ("valLoss", "camelCase", "min"),
    ("Loss/train", "tensorboard tutorial", "min"),
    ("Accuracy/test", "tensorboard tutorial", "max"),
    ("MulticlassF1Score", "torchmetrics", "max"),
    ("BinaryAUROC", "torchmetrics", "max"),
    ("MeanSquaredError", "torchmetrics", "min"),
    # scikit-learn scorers, cross_validate and cv_results_
    ("test_score", "cross_validate", "max"),
    ("fit_time", "cross_validate", "min"),
    ("score_time", "cross_validate", "min"),
    ("test_neg_mean_squared_error", "cross_validate", "max"),
    ("neg_log_loss", "sklearn scorer", "max"),
    ("neg_root_mean_squared_error", "sklearn scorer", "max"),
    ("neg_mse", "sklearn-style", "max"),
    ("mean_test_score", "cv_results_", "max"),
    ("std_test_score", "cv_results_", None),
    ("rank_test_score", "cv_results_", "min"),
    ("roc_auc", "sklearn", "max"),
    ("average_precision", "sklearn", "max"),
    ("balanced_accuracy", "sklearn", "max"),
    ("f1_score", "sklearn", "max"),
    ("r2_score", "sklearn", "max"),
    ("r2", "sklearn", "max"),
    ("explained_variance", "sklearn", "max"),
    ("max_error", "sklearn", "min"),
    ("brier_score_loss", "sklearn", "min"),
    ("zero_one_loss", "sklearn", "min"),
    ("matthews_corrcoef", "sklearn", None),  # "corrcoef" is not spelled like a word of the rule
    ("mcc", "sklearn", "max"),
    ("cohen_kappa", "sklearn", "max"),
    ("silhouette_score", "sklearn", "max"),
    ("davies_bouldin_score", "sklearn", "min"),
    ("label_ranking_average_precision_score", "sklearn", "max"),
    ("false_negative_rate", "fairness", "min"),
    ("true_positive_rate", "fairness", "max"),
    ("error_rate", "generic", "min"),
    # Reinforcement learning: Stable-Baselines3, CleanRL, Spinning Up
    ("rollout/ep_rew_mean", "sb3", "max"),
    ("rollout/ep_len_mean", "sb3", None),
    ("time/fps", "sb3", "max"),
    ("time/time_elapsed", "sb3", "min"),
    ("time/total_timesteps", "sb3", None),
    ("train/value_loss", "sb3", "min"),
    ("train/approx_kl", "sb3", None),
    ("train/clip_fraction", "sb3", None),
    ("train/explained_variance", "sb3", "max"),
    ("charts/episodic_return", "cleanrl", "max"),
    ("charts/SPS", "cleanrl", "max"),
    ("losses/entropy", "cleanrl", None),
    ("AverageEpRet", "spinning up", "max"),
    ("reward", "generic", "max"),
    ("mean_reward", "generic", "max"),
    ("reward_std", "generic", None),
    ("regret", "bandits", "min"),
    ("timestep", "generic", None),
    # Vision: ultralytics, detectron2, timm, generative models
    ("metrics/mAP50-95(B)", "ultralytics", "max"),
    ("metrics/precision(B)", "ultralytics", "max"),
    ("val/box_loss", "ultralytics", "min"),
    ("bbox/AP50", "detectron2", "max"),
    ("bbox/APs", "detectron2", "max"),
    ("data_time", "detectron2", "min"),
    ("eta_seconds", "detectron2", "min"),
    ("top1", "timm", "max"),
    ("eval_top5", "timm", "max"),
    ("top5_err", "imagenet scripts", "min"),
    ("miou", "segmentation", "max"),
    ("dice", "segmentation", "max"),
    ("fid", "gan", "min"),
    ("psnr", "super resolution", "max"),
    ("lpips", "super resolution", "min"),
    # Language models, MT, speech
    ("perplexity", "lm", "min"),
    ("ppl", "fairseq", "min"),
    ("nll_loss", "fairseq", "min"),
    ("loss_scale", "fairseq fp16", None),
    ("bleu", "fairseq", "max"),
    ("cer", "asr", "min"),
    ("tokens_per_second", "throughput", "max"),
    ("tokens/s", "throughput", "max"),
    ("seconds_per_step", "throughput", "min"),
    ("s/it", "tqdm", "min"),
    ("it/s", "tqdm", "max"),
    ("latency_ms", "serving", "min"),
    ("p99_latency", "serving", "min"),
    ("throughput", "serving", "max"),
    ("negative_log_likelihood", "generic", "min"),
    ("log_likelihood", "generic", "max"),
    ("elbo", "vae", "max"),
    ("cross_entropy", "generic", "min"),
    ("pass@1", "code eval", "max"),
    # Retrieval and recommendation
    ("ndcg@10", "recsys", "max"),
    ("NDCG_at_5", "recsys", "max"),
    ("mrr", "recsys", "max"),
    ("mean_reciprocal_rank", "kg embeddings", "max"),
    ("mean_rank", "kg embeddings", "min"),
    ("hit_rate@10", "recsys", "max"),
    ("recall@20", "recsys", "max"),
    ("map@k", "recsys", "max"),
    # Complements, spreads and changes
    ("1-acc", "complement", "min"),
    ("1 - accuracy", "complement", "min"),
    ("one_minus_auc", "complement", "min"),
    ("1-shot_accuracy", "few-shot", "max"),
    ("val_acc_mean", "aggregate", "max"),
    ("val_loss_std", "aggregate", None),
    ("loss_delta", "change", None),
    # System metrics: unknown unless obvious
    ("system/cpu_percent", "jupyter_tracking", None),
    ("system/memory_used_mb", "jupyter_tracking", None),
    ("system/gpu0_utilization_percent", "jupyter_tracking", None),
    ("system/network_receive_megabytes", "mlflow", None),
    # Plain unknowns
    ("weird_thing", "unknown", None),
    ("", "empty", None),
]


def test_the_table_is_big_enough_and_has_no_duplicates():
    names = [name for name, _, _ in METRICS]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "source", "expected"), METRICS, ids=[m[0] or "empty" for m in METRICS])
def test_metric_goal_of_real_names(name, source, expected):
    assert goals.metric_goal(name) == expected, f"{name!r} ({source})"


def test_metrics_prefix_and_words_of():
    assert goals.metric_goal("metrics.val_loss") == "min"
    assert goals.words_of("valLoss_mAP50-95") == ["val", "loss", "map50", "95"]
    assert goals.words_of("train.acc/top-1") == ["train", "acc", "top", "1"]


def test_overrides_win_over_the_rule_exact_then_pattern():
    overrides = {"reward": "min", "entropy": "max", "custom_*": "max"}
    assert goals.metric_goal("reward", overrides) == "min"
    assert goals.metric_goal("entropy", overrides) == "max"
    assert goals.metric_goal("custom_thing", overrides) == "max"
    assert goals.metric_goal("metrics.reward", overrides) == "min"
    assert goals.metric_goal("val_loss", overrides) == "min"  # the rule for the rest
    assert goals.metric_goal("other", overrides) is None
    assert goals.metric_goal("reward", {"reward": "sideways"}) == "max"  # a bad value is ignored


def test_parse_goal_overrides():
    assert goals.parse_goal_overrides(["reward:max", "mrr:max, latency:min"]) == {
        "reward": "max", "mrr": "max", "latency": "min"}
    assert goals.parse_goal_overrides("metrics.x:MAX") == {"x": "max"}
    assert goals.parse_goal_overrides("reward:auto") == {"reward": "auto"}
    assert goals.parse_goal_overrides("a/b:c:min") == {"a/b:c": "min"}
    for bad in ("reward", "reward:up", ":max"):
        with pytest.raises(goals.GoalError, match="METRIC:min, METRIC:max or METRIC:auto"):
            goals.parse_goal_overrides(bad)


def test_check_overrides_and_tags():
    assert goals.check_overrides({"reward": "MAX", "loss": None}) == {"reward": "max", "loss": "auto"}
    with pytest.raises(goals.GoalError, match="'min', 'max' or 'auto'"):
        goals.check_overrides({"reward": "higher"})
    tags = {"jupyter_tracking.goal.reward": "max", "jupyter_tracking.goal.bad": "up", "other": "min"}
    assert goals.overrides_from_tags(tags) == {"reward": "max"}


# ---------------------------------------------------------------------------------------------- the card


def _summary(metrics: dict[str, float]) -> RunSummary:
    return RunSummary("r2", "try", "1", "exp", "FINISHED", 100.0, 101.0, params={}, metrics=metrics)


def test_card_shows_unknown_goals_neutral_and_known_ones_coloured():
    comparison = Comparison(previous_run_id="r1", previous_metrics={"weird": 2.0, "val_loss": 0.5, "reward": 4.0},
                            best={"val_loss": (0.25, "r0")})
    data = card_data(_summary({"weird": 3.0, "val_loss": 0.4, "reward": 5.0}), comparison, notebook=None, cell_id=None)
    by_key = {m["key"]: m for m in data["metrics"]}
    assert by_key["weird"]["goal"] is None and by_key["val_loss"]["goal"] == "min"
    assert by_key["reward"]["goal"] == "max"
    page = render_html(data)
    weird_row = page[page.index(">weird<"):].split("</tr>")[0]
    loss_row = page[page.index(">val_loss<"):].split("</tr>")[0]
    reward_row = page[page.index(">reward<"):].split("</tr>")[0]
    assert f'<span style="color:{MUTED}">+1 vs previous</span>' in weird_row  # neutral
    assert f'<span style="color:{GOOD}">-0.1000 vs previous</span>' in loss_row  # a lower loss: better
    assert f'<span style="color:{GOOD}">+1 vs previous</span>' in reward_row  # a higher reward: better
    assert "weird=3 (+1 vs previous)" in render_text(data)
    # The experiment's override decides, and is carried in the JSON for the JupyterLab card.
    comparison.goals = {"weird": "max", "reward": "min"}
    data = card_data(_summary({"weird": 3.0, "reward": 5.0}), comparison, notebook=None, cell_id=None)
    assert [(m["key"], m["goal"]) for m in data["metrics"]] == [("reward", "min"), ("weird", "max")]
    page = render_html(data)
    assert f'<span style="color:{BAD}">+1 vs previous</span>' in page[page.index(">reward<"):]
    assert f'<span style="color:{GOOD}">+1 vs previous</span>' in page[page.index(">weird<"):]


def _card_of(shell, source: str) -> dict:
    bundles = []
    shell.display_pub.publish = lambda data, *a, **k: bundles.append(data)  # capture the raw bundle
    try:
        result = shell.run_cell(source)
    finally:
        del shell.display_pub.publish
    assert result.error_before_exec is None and result.error_in_exec is None, result
    return next(bundle for bundle in bundles if MIME_TYPE in bundle)[MIME_TYPE]


def test_config_goal_is_an_experiment_tag_used_by_card_best_and_grid(shell, project, capsys):
    cell = "%%track probe\nweird = {value} * 1.0\nreward = {value} * 2\n"
    shell.run_cell(cell.format(value=3))
    data = _card_of(shell, cell.format(value=5))
    goals_of = {m["key"]: (m["goal"], m["best"]) for m in data["metrics"]}
    assert goals_of == {"weird": (None, None), "reward": ("max", 6.0)}  # unknown: no best, no colour
    with pytest.raises(UsageError, match="'weird' improves is unknown: say --max or --min"):
        shell.run_line_magic("track", "best weird")
    with pytest.raises(UsageError, match="not both"):
        shell.run_line_magic("track", "best weird --max --min")
    low, high = runs_of(project, EXPERIMENT)
    capsys.readouterr()
    shell.run_line_magic("track", "best weird --min")
    assert f"({low.info.run_id})" in capsys.readouterr().out
    shell.run_line_magic("track", "best reward")
    assert f"({high.info.run_id})" in capsys.readouterr().out

    shell.run_line_magic("track", "config --goal weird:max,reward:min --goal latency_ms:max")
    out = capsys.readouterr().out
    assert "goals set for this experiment: latency_ms max, reward min, weird max" in out
    experiment = store_client(project).get_experiment_by_name(EXPERIMENT)
    assert {k: v for k, v in experiment.tags.items() if k.startswith("jupyter_tracking.goal.")} == {
        "jupyter_tracking.goal.weird": "max", "jupyter_tracking.goal.reward": "min",
        "jupyter_tracking.goal.latency_ms": "max"}
    # This session's next card uses them at once (another kernel's within OverridesCache.max_age).
    data = _card_of(shell, cell.format(value=4))
    goals_of = {m["key"]: (m["goal"], m["best"]) for m in data["metrics"]}
    assert goals_of == {"weird": ("max", 5.0), "reward": ("min", 6.0)}
    capsys.readouterr()
    shell.run_line_magic("track", "best reward")
    assert f"({low.info.run_id})" in capsys.readouterr().out
    shell.run_line_magic("track", "best weird")
    assert f"({high.info.run_id})" in capsys.readouterr().out

    # --grid judges by the override too: the lowest reward is the best child.
    shell.user_ns["grid"] = {"depth": [1, 3, 2]}
    shell.run_cell("%%track --grid grid\nreward = depth * 1.5\n")
    parent = next(r for r in runs_of(project, EXPERIMENT) if queries.GRID_TAG in r.data.tags)
    assert parent.data.tags[sweep.BEST_METRIC_TAG] == "reward:min"
    best = queries.get_run(parent.data.tags[queries.BEST_CHILD_TAG])
    assert best.data.params["depth"] == "1"

    # auto gives the metric back to the rule; a bad goal is one usage line.
    shell.run_line_magic("track", "config --goal reward:auto")
    assert "goals set for this experiment: latency_ms max, weird max" in capsys.readouterr().out
    assert "jupyter_tracking.goal.reward" not in store_client(project).get_experiment_by_name(EXPERIMENT).tags
    with pytest.raises(UsageError, match="METRIC:min, METRIC:max or METRIC:auto, got 'reward:up'"):
        shell.run_line_magic("track", "config --goal reward:up")


def test_overrides_cache_reads_again_when_old_or_cleared(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    client.set_experiment_tag(experiment, "jupyter_tracking.goal.reward", "min")
    cache = goals.OverridesCache(max_age=3600)
    assert cache.get(client, "uri", experiment) == {"reward": "min"}
    client.set_experiment_tag(experiment, "jupyter_tracking.goal.reward", "max")  # as another kernel would
    assert cache.get(client, "uri", experiment) == {"reward": "min"}  # no store query per card
    cache.clear()
    assert cache.get(client, "uri", experiment) == {"reward": "max"}
    cache.max_age = 0
    client.set_experiment_tag(experiment, "jupyter_tracking.goal.mrr", "max")
    assert cache.get(client, "uri", experiment) == {"reward": "max", "mrr": "max"}


def test_python_api_configure_goals(shell, project):
    import jupyter_tracking as jt

    jt.configure(goals={"reward": "min", "mrr": "max"})
    experiment = store_client(project).get_experiment_by_name(EXPERIMENT)
    assert goals.overrides_from_tags(experiment.tags) == {"reward": "min", "mrr": "max"}
    with pytest.raises(goals.GoalError):
        jt.configure(goals={"reward": "up"})
    jt.configure(goals={"reward": None})
    experiment = store_client(project).get_experiment_by_name(EXPERIMENT)
    assert goals.overrides_from_tags(experiment.tags) == {"mrr": "max"}


# ---------------------------------------------------------------------------------------------- --grid


def test_grid_picks_the_highest_reward(shell, project, capsys):
    shell.user_ns["grid"] = {"gamma": [0.9, 0.99, 0.95]}
    result = shell.run_cell("%%track --grid grid\nreward = 100 * gamma\nepisode_length = 10\n")
    assert result.error_in_exec is None and result.error_before_exec is None
    parent = next(r for r in runs_of(project, EXPERIMENT) if queries.GRID_TAG in r.data.tags)
    assert parent.data.tags[sweep.BEST_METRIC_TAG] == "reward:max"
    best = queries.get_run(parent.data.tags[queries.BEST_CHILD_TAG])
    assert best.data.params["gamma"] == "0.99"
    assert "best #2: reward = 99" in capsys.readouterr().out


def test_grid_by_an_unknown_metric_picks_no_best_and_says_so(shell, project, capsys):
    shell.user_ns["grid"] = {"k": [1, 2]}
    shell.run_cell("%%track --grid grid\nweird = k * 1.0\n")
    parent = next(r for r in runs_of(project, EXPERIMENT) if queries.GRID_TAG in r.data.tags)
    assert queries.BEST_CHILD_TAG not in parent.data.tags and sweep.BEST_METRIC_TAG not in parent.data.tags
    assert "no best child picked: which way 'weird' improves is unknown: use --best-by weird:max" in \
        capsys.readouterr().err
    with pytest.raises(UsageError, match="'weird' improves is unknown: write --best-by weird:max or weird:min"):
        shell.run_cell_magic("track", "--grid grid --best-by weird", "weird = k * 1.0\n")
    state = sweep.run_grid(shell, "weird = k * 1.0\n", _options(), {"k": [1, 2]}, best_by=("weird", "max"), show=False)
    assert state.rows[state.best_index].bindings == {"k": 2}


def _options():
    from jupyter_tracking.cell import TrackOptions

    return TrackOptions()


def test_parse_best_by():
    assert sweep.parse_best_by("test_acc") == ("test_acc", "max")
    assert sweep.parse_best_by("reward") == ("reward", "max")
    assert sweep.parse_best_by("ndcg@10") == ("ndcg@10", "max")
    assert sweep.parse_best_by("val_loss") == ("val_loss", "min")
    assert sweep.parse_best_by("metrics.weird:MAX") == ("weird", "max")
    for bad in ("x:sideways", ":max"):
        with pytest.raises(sweep.GridError, match="METRIC or METRIC:min"):
            sweep.parse_best_by(bad)
