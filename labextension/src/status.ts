/**
 * What the status-bar item says while a tracked cell runs. Pure (unit-tested).
 */

import { formatDuration, formatNumber } from './format';

const PREFERRED = [/^val(idation)?[_.-]?loss$/i, /loss/i, /^val(idation)?[_.-]?acc/i, /acc|f1|auc|score|r2/i];

/**
 * The metric to show: the one with the most steps (the curve being trained), ties broken by a loss, then
 * an accuracy-like name, then the first. Null when there is none.
 */
export function pickMainMetric(metrics: { key: string; steps?: number }[]): string | null {
  if (!metrics.length) {
    return null;
  }
  const rank = (key: string) => {
    const i = PREFERRED.findIndex(re => re.test(key));
    return i === -1 ? PREFERRED.length : i;
  };
  const sorted = [...metrics].sort((a, b) => {
    const steps = (b.steps || 0) - (a.steps || 0);
    return steps !== 0 ? steps : rank(a.key) - rank(b.key);
  });
  return sorted[0].key;
}

export interface IRunningState {
  runName: string | null;
  startedAt: number;
  metricKey: string | null;
  metricValue: number | null;
}

/** "⏺ tracking lr-0.1 · 1 min 05 s · val_loss 0.231" */
export function statusText(state: IRunningState, now: number = Date.now()): string {
  const parts = [`tracking ${state.runName || 'run'}`, formatDuration(Math.max(0, (now - state.startedAt) / 1000))];
  if (state.metricKey) {
    parts.push(`${state.metricKey} ${formatNumber(state.metricValue)}`);
  }
  return parts.join(' · ');
}
