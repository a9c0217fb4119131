/**
 * The status-bar item shown while a tracked cell runs: run name, elapsed time, latest main metric.
 *
 * It starts when a `%%track` cell is scheduled and ends when that cell finishes. Its figures come from the
 * run card the kernel updates while the cell runs and, when no card has arrived yet, from polling the
 * REST API for the newest RUNNING run of the notebook's store (every 3 s).
 */

import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { searchRuns } from './api';
import { IRunningState, pickMainMetric, statusText } from './status';
import { IRunCard } from './types';

const POLL_MS = 3000;

export class TrackingStatus extends Widget {
  constructor() {
    super();
    this.addClass('jp-TrackingStatus');
    this.node.title = 'jupyter_tracking: a tracked cell is running';
    this.hide();
  }

  /** A tracked cell of notebook `path` started; `runName` is the name given on its %%track line. */
  start(path: string, runName: string | null): void {
    this.stop();
    this._path = path;
    this._state = { runName, startedAt: Date.now(), metricKey: null, metricValue: null };
    this._fromCard = false;
    this.show();
    this._stateChanged.emit(undefined);
    this._render();
    this._timer = window.setInterval(() => this._render(), 1000);
    this._poll = window.setInterval(() => void this._pollRunning(), POLL_MS);
  }

  /** The kernel rendered (or updated) a run card. */
  updateFromCard(card: IRunCard): void {
    if (!this._state || card.status !== 'RUNNING') {
      return;
    }
    this._fromCard = true;
    this._state.runName = card.run_name || this._state.runName;
    if (card.start_time) {
      this._state.startedAt = card.start_time;
    }
    const key = pickMainMetric(card.metrics);
    this._state.metricKey = key;
    this._state.metricValue = key ? card.metrics.find(m => m.key === key)!.value : null;
    this._render();
  }

  stop(): void {
    window.clearInterval(this._timer);
    window.clearInterval(this._poll);
    this._state = null;
    this.hide();
    this._stateChanged.emit(undefined);
  }

  /** For the status bar: emitted when the item starts or stops being shown. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  get running(): boolean {
    return this._state !== null;
  }

  private _render(): void {
    if (this._state) {
      this.node.textContent = statusText(this._state);
    }
  }

  private async _pollRunning(): Promise<void> {
    const state = this._state;
    if (!state || this._fromCard) {
      return;
    }
    try {
      const page = await searchRuns(this._path, {
        filter: `attributes.status = 'RUNNING' and attributes.start_time >= ${Math.floor(state.startedAt - 5000)}`,
        orderBy: 'attributes.start_time DESC',
        maxResults: 1
      });
      const run = page.runs[0];
      if (!run || this._state !== state || this._fromCard) {
        return;
      }
      state.runName = run.run_name;
      const key = pickMainMetric(Object.keys(run.metrics).map(k => ({ key: k })));
      state.metricKey = key;
      state.metricValue = key ? run.metrics[key] : null;
      this._render();
    } catch {
      // The store may not exist yet or be busy: the next poll tries again.
    }
  }

  private _stateChanged = new Signal<this, void>(this);
  private _path = '';
  private _state: IRunningState | null = null;
  private _fromCard = false;
  private _timer = 0;
  private _poll = 0;
}
