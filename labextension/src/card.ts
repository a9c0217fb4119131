/**
 * The run card bundle: validation and the view model the renderer draws. Pure (unit-tested).
 */

import { formatDuration, formatNumber, IDelta, metricDelta, runDuration } from './format';
import { ICardMetric, ICardParam, IRunCard, MetricGoal, RunStatus } from './types';

const STATUSES: RunStatus[] = ['RUNNING', 'FINISHED', 'FAILED', 'KILLED', 'SCHEDULED'];

function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : value === null || value === undefined ? fallback : String(value);
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function strOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** The goal the kernel sent; anything else (missing, an old card, junk) is unknown, never guessed here. */
function goal(value: unknown): MetricGoal {
  return value === 'min' || value === 'max' ? value : null;
}

/** Which way each metric of a card improves, as the kernel decided: `{key: 'min' | 'max' | null}`. */
export function cardGoals(card: IRunCard): Record<string, MetricGoal> {
  const goals: Record<string, MetricGoal> = {};
  for (const m of card.metrics) {
    goals[m.key] = m.goal;
  }
  return goals;
}

/**
 * A well-formed card from whatever the kernel sent, or null if it is not a run card at all.
 * Unknown fields are ignored, missing ones get neutral defaults, every string is kept as data (never markup).
 */
export function parseCard(data: unknown): IRunCard | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    return null;
  }
  const raw = data as Record<string, unknown>;
  if (typeof raw.run_id !== 'string' || !raw.run_id) {
    return null;
  }
  const status = STATUSES.includes(raw.status as RunStatus) ? (raw.status as RunStatus) : 'FINISHED';
  const params: ICardParam[] = Array.isArray(raw.params)
    ? raw.params
        .filter(p => p && typeof p === 'object' && typeof p.key === 'string')
        .map(p => ({
          key: p.key,
          value: str(p.value),
          previous: p.previous === null || p.previous === undefined ? null : str(p.previous),
          changed: Boolean(p.changed)
        }))
    : [];
  const metrics: ICardMetric[] = Array.isArray(raw.metrics)
    ? raw.metrics
        .filter(m => m && typeof m === 'object' && typeof m.key === 'string')
        .map(m => ({
          key: m.key,
          value: num(m.value),
          previous: num(m.previous),
          best: num(m.best),
          goal: goal(m.goal),
          steps: typeof m.steps === 'number' ? m.steps : 0
        }))
    : [];
  return {
    version: typeof raw.version === 'number' ? raw.version : 1,
    run_id: raw.run_id,
    run_name: str(raw.run_name, raw.run_id),
    experiment_id: str(raw.experiment_id),
    experiment_name: str(raw.experiment_name),
    status,
    start_time: num(raw.start_time),
    end_time: num(raw.end_time),
    duration_s: num(raw.duration_s),
    tracking_uri: str(raw.tracking_uri),
    notebook: strOrNull(raw.notebook),
    cell_id: strOrNull(raw.cell_id),
    previous_run_id: strOrNull(raw.previous_run_id),
    best_run_id: strOrNull(raw.best_run_id),
    params,
    metrics,
    withheld: Array.isArray(raw.withheld) ? raw.withheld.filter(w => typeof w === 'string') : [],
    ui_url: strOrNull(raw.ui_url),
    note: strOrNull(raw.note)
  };
}

export interface IParamRow {
  key: string;
  value: string;
  /** "was 0.1" when the value changed since the cell's previous run; "new" when it did not exist. */
  note: string | null;
  changed: boolean;
}

export interface IMetricRow {
  key: string;
  value: string;
  vsPrevious: IDelta | null;
  vsBest: IDelta | null;
  /** This run holds the best value of the experiment. */
  isBest: boolean;
  /** ...and it beat the cell's previous run to it: flagged "new best". */
  newBest: boolean;
  steps: number;
  goal: MetricGoal;
  /** Why a change is shown neutral (the goal is unknown) and how to set it; null when the goal is known. */
  goalNote: string | null;
}

export interface ICardView {
  title: string;
  subtitle: string;
  status: RunStatus;
  statusLabel: string;
  duration: string;
  changedParams: IParamRow[];
  otherParams: IParamRow[];
  metrics: IMetricRow[];
  withheld: string;
  firstRun: boolean;
  /** The `--note` text, if any. */
  note: string;
  /** Not the first run, and no param or metric changed since the previous one: said once instead of per row. */
  noChange: boolean;
  /** Some metric is a new best. */
  newBest: boolean;
}

const STATUS_LABELS: Record<RunStatus, string> = {
  RUNNING: 'running',
  FINISHED: 'finished',
  FAILED: 'failed',
  KILLED: 'interrupted',
  SCHEDULED: 'scheduled'
};

/**
 * What the card shows: changed params first, metrics with their change against the previous run (only where
 * something changed) and against the best run (only when that is not the previous run: it would repeat the same
 * change), "new best" where this run beat the previous one to the experiment's best.
 */
export function cardView(card: IRunCard, now: number = Date.now()): ICardView {
  const firstRun = card.previous_run_id === null;
  const rows: IParamRow[] = card.params.map(p => {
    let note: string | null = null;
    if (p.changed && !firstRun) {
      note = p.previous === null ? 'new' : `was ${p.previous}`;
    }
    return { key: p.key, value: p.value, note, changed: p.changed && !firstRun };
  });
  const duration =
    card.duration_s !== null
      ? card.duration_s
      : runDuration(card.start_time, card.status === 'RUNNING' ? null : card.end_time, now);
  const metrics: IMetricRow[] = card.metrics.map(m => {
    // Without a goal there is no best value to hold.
    const isBest =
      m.goal !== null &&
      (card.best_run_id === card.run_id ||
        (m.best !== null && m.value !== null && m.value === m.best && card.status !== 'RUNNING'));
    const change = firstRun ? null : metricDelta(m.value, m.previous, m.goal);
    const vsPrevious = change && change.direction !== 'same' ? change : null;
    const previousIsBest = m.previous !== null && m.best !== null && m.previous === m.best;
    return {
      key: m.key,
      value: formatNumber(m.value),
      vsPrevious,
      vsBest: isBest || m.goal === null || previousIsBest ? null : metricDelta(m.value, m.best, m.goal),
      isBest,
      newBest: isBest && !firstRun && vsPrevious !== null && vsPrevious.direction === 'better',
      steps: m.steps,
      goal: m.goal,
      goalNote:
        m.goal === null
          ? `Which way ${m.key} improves is unknown; %track config --goal ${m.key}:max (or :min) sets it`
          : null
    };
  });
  const changedParams = rows.filter(r => r.changed);
  return {
    title: card.run_name || card.run_id,
    subtitle: card.experiment_name ? `experiment ${card.experiment_name}` : '',
    status: card.status,
    statusLabel: STATUS_LABELS[card.status],
    duration: formatDuration(duration),
    changedParams,
    otherParams: rows.filter(r => !r.changed),
    metrics,
    withheld: card.withheld.join(', '),
    firstRun,
    note: card.note ?? '',
    noChange: !firstRun && card.status !== 'RUNNING' && !changedParams.length && metrics.every(m => m.vsPrevious === null),
    newBest: metrics.some(m => m.newBest)
  };
}
