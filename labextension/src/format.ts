/**
 * Pure formatting helpers: numbers, durations, times and metric changes. No DOM here (unit-tested).
 */

import { MetricGoal } from './types';

/**
 * A metric value, the one number format of the project (the kernel's card, `%runs` and the diff use the same
 * rule in Python): whole numbers below a million as they are; 1e-4 <= |x| < 1e4 in `digits` (4) significant
 * digits, fixed notation, trailing zeros kept (0.9620 next to 0.9601); 1e4 <= |x| < 1e6 rounded to a whole
 * number; anything else in exponent form with `digits` significant digits ("1.235e-5", "2.000e7").
 */
export function formatNumber(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return '—';
  }
  if (!Number.isFinite(value)) {
    return value > 0 ? '∞' : '-∞';
  }
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1e6) {
    return String(value);
  }
  if (abs >= 1e-4 && abs < 1e4) {
    const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
    const fixed = value.toFixed(decimals);
    // Rounding can carry into one more digit (9.99996 -> "10.0000"): one decimal fewer then.
    return fixed.replace(/^-/, '').replace(/^0\.?0*/, '').replace('.', '').length > digits && decimals > 0
      ? value.toFixed(decimals - 1)
      : fixed;
  }
  if (abs >= 1e4 && abs < 1e6) {
    return String(Math.round(value));
  }
  return value.toExponential(Math.max(0, digits - 1)).replace('e+', 'e');
}

/** An axis tick: round values read best without trailing zeros ("0.5", "0.25", "1e-5"). */
export function formatTick(value: number): string {
  const text = formatNumber(value, 3);
  return text.includes('e') ? text.replace(/\.?0+e/, 'e') : text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return '—';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours > 0) {
    return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  }
  return `${minutes} min ${String(secs).padStart(2, '0')} s`;
}

/** A run's duration from its start and end (or `now` while it runs). */
export function runDuration(
  start: number | null,
  end: number | null,
  now: number = Date.now()
): number | null {
  if (!start) {
    return null;
  }
  return Math.max(0, ((end || now) - start) / 1000);
}

/** "2026-11-22 05:07" in local time; "—" when unknown. */
export function formatTime(ms: number | null | undefined): string {
  if (!ms) {
    return '—';
  }
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

/** 'changed': it moved, but which way is better is unknown (goal null): shown neutral. */
export type Direction = 'better' | 'worse' | 'same' | 'changed';

export interface IDelta {
  /** Signed difference, e.g. "-0.0123", or a relative one "+4.2%". */
  text: string;
  direction: Direction;
}

/**
 * How `value` compares with `reference` for a metric whose goal is `goal` (lower or higher is better; null:
 * unknown, so a change is only 'changed'). Null when either value is unknown.
 */
export function metricDelta(
  value: number | null | undefined,
  reference: number | null | undefined,
  goal: MetricGoal
): IDelta | null {
  if (
    value === null ||
    value === undefined ||
    reference === null ||
    reference === undefined ||
    !Number.isFinite(value) ||
    !Number.isFinite(reference)
  ) {
    return null;
  }
  const diff = value - reference;
  if (diff === 0 || formatNumber(value) === formatNumber(reference)) {
    return { text: 'no change', direction: 'same' };
  }
  const improved = goal === 'min' ? diff < 0 : diff > 0;
  const sign = diff > 0 ? '+' : '-';
  let text = `${sign}${formatNumber(Math.abs(diff))}`;
  if (reference !== 0) {
    const pct = (Math.abs(diff) / Math.abs(reference)) * 100;
    if (pct >= 0.1 && pct < 1000) {
      text += ` (${sign}${pct < 10 ? pct.toFixed(1) : Math.round(pct)}%)`;
    }
  }
  return { text, direction: goal === null ? 'changed' : improved ? 'better' : 'worse' };
}

/** Whether `url` is safe to put in an href: only http(s) and same-origin paths. */
export function isSafeUrl(url: string | null | undefined): boolean {
  if (!url) {
    return false;
  }
  if (url.startsWith('/') && !url.startsWith('//')) {
    return true;
  }
  return /^https?:\/\//i.test(url);
}

/**
 * How a run's status reads in the side panel: lower case, and "running (stale)" for a run the kernel side marks
 * stale (owned by another machine that has shown no sign of life for a while).
 */
export function runStatusText(run: { status: string; stale?: boolean }): string {
  const text = run.status.toLowerCase();
  return run.stale && run.status === 'RUNNING' ? `${text} (stale)` : text;
}

/** The runs table's count line: "12,345 runs", "50 of 12,345 runs", or "50 runs shown, more to load" when the
 * store does not say its total (a tracking server). */
export function runCountText(shown: number, total: number | null | undefined, more: boolean): string {
  const runs = (n: number) => `${n.toLocaleString('en-US')} run${n === 1 ? '' : 's'}`;
  if (total === null || total === undefined) {
    return more ? `${runs(shown)} shown, more to load` : runs(shown);
  }
  return shown >= total ? runs(total) : `${shown.toLocaleString('en-US')} of ${runs(total)}`;
}
