/**
 * How a run's details are laid out in the side panel: what goes in which section and in which order.
 * Pure (unit-tested); panel.ts draws.
 */

import { IMetricDetail } from './types';

/** Tags written by MLflow or by jupyter_tracking itself: shown folded, after the user's own tags. */
export function isInternalTag(key: string): boolean {
  return key.startsWith('mlflow.') || key.startsWith('jupyter_tracking.');
}

export const PACKAGES_TAG = 'jupyter_tracking.packages';
export const NOTE_TAG = 'mlflow.note.content';

export interface IRunSections {
  /** The user's tags, by key. */
  userTags: [string, string][];
  /** Package name and version, from the packages tag (empty when it is missing or unreadable). */
  packages: [string, string][];
  /** Everything else MLflow and jupyter_tracking wrote (the packages and note tags are shown on their own). */
  internalTags: [string, string][];
}

/** The packages tag as `[name, version]` rows, sorted by name; [] when it is not a JSON object of strings. */
export function packageRows(value: string | undefined): [string, string][] {
  if (!value) {
    return [];
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return [];
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return [];
  }
  return Object.entries(parsed as Record<string, unknown>)
    .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
    .map(([k, v]) => [k, String(v)] as [string, string])
    .sort(([a], [b]) => a.localeCompare(b));
}

export function runSections(tags: Record<string, string>): IRunSections {
  const entries = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));
  const packages = packageRows(tags[PACKAGES_TAG]);
  return {
    userTags: entries.filter(([k]) => !isInternalTag(k)),
    packages,
    internalTags: entries.filter(([k]) => isInternalTag(k) && k !== NOTE_TAG && !(k === PACKAGES_TAG && packages.length))
  };
}

/** Step metrics (more than one point) first, in name order, then single values: charts lead the details. */
export function orderMetrics(metrics: IMetricDetail[]): IMetricDetail[] {
  const series = metrics.filter(m => m.points > 1);
  const single = metrics.filter(m => m.points <= 1);
  return [...series, ...single];
}

/**
 * The metric the compare chart shows first: the current choice if the runs have it, else the first metric
 * with a history (more than one point) in any selected run, else the first metric.
 */
export function defaultCompareMetric(keys: string[], points: Record<string, number>, current: string | null): string | null {
  if (current && keys.includes(current)) {
    return current;
  }
  return keys.find(k => (points[k] || 0) > 1) ?? keys[0] ?? null;
}
