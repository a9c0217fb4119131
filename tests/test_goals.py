"""The one rule for which way a metric improves (goals.py): metric names as real ML code logs them."""

from __future__ import annotations

import pytest

from jupyter_tracking import goals

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
