/**
 * What the MLflow tab says while the UI server starts. Pure (unit-tested); mlflowTab.ts draws.
 */

import type { IUIStartState } from './api';

/** The progress line's text and fraction (null: unknown, an indeterminate bar). Pure (unit-tested). */
export function startProgress(state: IUIStartState | null, sinceMs: number): { text: string; fraction: number | null } {
  const elapsed = state?.state === 'starting' && state.elapsed !== null ? state.elapsed : sinceMs / 1000;
  const stage = state?.state === 'starting' && state.stage ? state.stage : 'starting';
  const seconds = `${Math.round(elapsed)} s`;
  if (state?.expected) {
    const left = Math.max(0, state.expected - elapsed);
    const fraction = Math.min(0.95, elapsed / state.expected);
    const rest = left >= 1 ? `, about ${Math.ceil(left)} s left` : ', almost ready';
    return { text: `Starting the MLflow UI: ${stage} · ${seconds}${rest}`, fraction };
  }
  return { text: `Starting the MLflow UI: ${stage} · ${seconds}`, fraction: null };
}
