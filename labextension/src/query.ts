/**
 * Building REST queries and table columns for the runs browser. Pure (unit-tested).
 */

import { IRunSummary, MetricGoal } from './types';

export type SortDirection = 'ASC' | 'DESC';

export interface IColumn {
  /** "attr:run_name", "metric:val_loss", "param:lr". */
  id: string;
  kind: 'attr' | 'metric' | 'param';
  key: string;
  label: string;
}

export const ATTRIBUTE_COLUMNS: IColumn[] = [
  { id: 'attr:run_name', kind: 'attr', key: 'run_name', label: 'Run' },
  { id: 'attr:status', kind: 'attr', key: 'status', label: 'Status' },
  { id: 'attr:start_time', kind: 'attr', key: 'start_time', label: 'Started' }
];

/** Quote a key for MLflow's search syntax when it is not a plain identifier (backticks). */
export function quoteKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? key : '`' + key.replace(/`/g, '') + '`';
}

/** The MLflow `order_by` clause for sorting on `column`. */
export function orderByFor(column: IColumn, direction: SortDirection): string {
  const prefix = column.kind === 'attr' ? 'attributes' : column.kind === 'metric' ? 'metrics' : 'params';
  return `${prefix}.${quoteKey(column.key)} ${direction}`;
}

/**
 * Clicking a header: a new column sorts best first for a metric whose goal the kernel sent (ascending for
 * 'min', descending for 'max'), descending for other metrics and times, ascending otherwise; again flips it.
 */
export function nextSort(
  current: { column: string; direction: SortDirection } | null,
  column: IColumn,
  goal: MetricGoal = null
): { column: string; direction: SortDirection } {
  if (current && current.column === column.id) {
    return { column: column.id, direction: current.direction === 'ASC' ? 'DESC' : 'ASC' };
  }
  if (column.kind === 'metric' && goal !== null) {
    return { column: column.id, direction: goal === 'min' ? 'ASC' : 'DESC' };
  }
  const descending = column.kind === 'metric' || column.key === 'start_time';
  return { column: column.id, direction: descending ? 'DESC' : 'ASC' };
}

/**
 * Metric then param columns found in `runs`, in first-seen order; at most `max` of each kind.
 * Keys whose value is the same in every run go last (they tell runs apart the least).
 */
export function dataColumns(runs: IRunSummary[], max = 8): IColumn[] {
  const collect = (kind: 'metric' | 'param'): IColumn[] => {
    const keys: string[] = [];
    const values = new Map<string, Set<string>>();
    for (const run of runs) {
      const record = kind === 'metric' ? run.metrics : run.params;
      for (const [key, value] of Object.entries(record || {})) {
        if (!values.has(key)) {
          keys.push(key);
          values.set(key, new Set());
        }
        values.get(key)!.add(String(value));
      }
    }
    const varying = keys.filter(k => values.get(k)!.size > 1 || runs.length < 2);
    const constant = keys.filter(k => !varying.includes(k));
    return [...varying, ...constant].slice(0, max).map(key => ({
      id: `${kind}:${key}`,
      kind,
      key,
      label: key
    }));
  };
  return [...collect('metric'), ...collect('param')];
}

/** A query string from parameters; empty and undefined values are left out, arrays repeat the key. */
export function queryString(params: Record<string, string | number | string[] | null | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === null || v === undefined || v === '') {
        continue;
      }
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** What the notebook's kernel says it writes to (see kernel.ts); null when it did not answer. */
export interface ITargetHint {
  experiment: string;
  experiment_id: string | null;
}

/**
 * The experiment to show first: the one the notebook's kernel writes to (by id, else by name), else the one
 * named after the notebook (the kernel's default), else the most recently updated.
 */
export function defaultExperiment(
  experiments: { experiment_id: string; name: string }[],
  notebookPath: string,
  target: ITargetHint | null = null
): string | null {
  if (target) {
    const byId = target.experiment_id ? experiments.find(e => e.experiment_id === target.experiment_id) : undefined;
    const byName = byId || experiments.find(e => e.name === target.experiment);
    if (byName) {
      return byName.experiment_id;
    }
  }
  const stem = (notebookPath.split('/').pop() || '').replace(/\.ipynb$/, '');
  const named = experiments.find(e => e.name === stem);
  if (named) {
    return named.experiment_id;
  }
  return experiments.length ? experiments[0].experiment_id : null;
}

/**
 * The hash route of a run (or an experiment's runs) inside MLflow's UI, in its training view (MLflow 3 opens
 * on its GenAI view otherwise). The same rule as ``ui_route`` in jupyter_tracking/sharing/display.py.
 */
export function mlflowRoute(experimentId?: string | null, runId?: string | null): string {
  const view = '?workflowType=machine_learning';
  if (experimentId && runId) {
    return `#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(runId)}${view}`;
  }
  if (experimentId) {
    return `#/experiments/${encodeURIComponent(experimentId)}/runs${view}`;
  }
  return `#/experiments${view}`;
}

/** A filter example from this experiment's own metric and param names (never one it does not have). */
export function filterPlaceholder(runs: { metrics: Record<string, number | null>; params: Record<string, string> }[]): string {
  const metric = runs.map(r => Object.keys(r.metrics || {})[0]).find(Boolean);
  const param = runs.map(r => Object.entries(r.params || {})[0]).find(Boolean);
  const parts: string[] = [];
  if (metric) {
    const value = runs.map(r => r.metrics[metric]).find(v => typeof v === 'number');
    parts.push(`metrics.${quoteKey(metric)} < ${typeof value === 'number' ? Number(value.toPrecision(2)) : 1}`);
  }
  if (param) {
    parts.push(`params.${quoteKey(param[0])} = '${param[1].replace(/'/g, '')}'`);
  }
  return parts.length ? `filter, e.g. ${parts.join(' and ')}` : 'filter, e.g. metrics.loss < 0.5';
}
