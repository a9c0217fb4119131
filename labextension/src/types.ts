/**
 * Shapes of the data this extension reads: the run card the kernel emits and the REST API's answers.
 */

export const RUN_MIME = 'application/vnd.jupyter-tracking.run+json';

export type RunStatus = 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED' | 'SCHEDULED';

export interface ICardParam {
  key: string;
  value: string;
  previous: string | null;
  changed: boolean;
}

/**
 * Which way a metric improves, as the kernel decided it (jupyter_tracking/goals.py, with the experiment's
 * overrides): null when unknown. The extension never guesses it from the name itself.
 */
export type MetricGoal = 'min' | 'max' | null;

export interface ICardMetric {
  key: string;
  value: number | null;
  previous: number | null;
  best: number | null;
  goal: MetricGoal;
  steps: number;
}

/** The run card bundle (`application/vnd.jupyter-tracking.run+json`, version 1). */
export interface IRunCard {
  version: number;
  run_id: string;
  run_name: string;
  experiment_id: string;
  experiment_name: string;
  status: RunStatus;
  start_time: number | null;
  end_time: number | null;
  duration_s: number | null;
  tracking_uri: string;
  notebook: string | null;
  cell_id: string | null;
  previous_run_id: string | null;
  best_run_id: string | null;
  params: ICardParam[];
  metrics: ICardMetric[];
  withheld: string[];
  ui_url: string | null;
  /** The `%%track --note` text (null when none). */
  note?: string | null;
}

export interface IStoreInfo {
  uri: string;
  source: string;
  exists: boolean;
  description: string;
}

export interface IExperiment {
  experiment_id: string;
  name: string;
  creation_time: number | null;
  last_update_time: number | null;
}

export interface IRunSummary {
  run_id: string;
  run_name: string;
  experiment_id: string;
  status: RunStatus;
  /** RUNNING, owned by another host, and silent for a while (the kernel's `recovery.is_stale`). */
  stale?: boolean;
  start_time: number | null;
  end_time: number | null;
  params: Record<string, string>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
}

export interface IRunPage {
  runs: IRunSummary[];
  next_page_token: string | null;
  /** How many runs match in all (null when the store could not count them cheaply). */
  total?: number | null;
}

export interface IMetricDetail {
  key: string;
  value: number | null;
  step: number;
  points: number;
}

export interface IRunDetail extends IRunSummary {
  artifact_uri: string;
  metric_details: IMetricDetail[];
}

export interface IMetricPoint {
  step: number;
  value: number | null;
  timestamp: number;
}

export interface IMetricHistory {
  run_id: string;
  key: string;
  total: number;
  points: IMetricPoint[];
}
