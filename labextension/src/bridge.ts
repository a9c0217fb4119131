/**
 * Links the run-card renderer (a MIME extension, with no access to the application) to the main plugin:
 * cards announce what they show, links in cards ask the plugin to open a run.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { IRunCard } from './types';

export class TrackingBridge {
  /** Emitted each time a card is rendered or updated (while the cell runs, the status is RUNNING). */
  get cardRendered(): ISignal<this, IRunCard> {
    return this._cardRendered;
  }

  announce(card: IRunCard): void {
    this._cardRendered.emit(card);
  }

  /** Set by the main plugin: show a run in the Experiments panel. */
  openRun: ((card: IRunCard) => void) | null = null;

  /** Set by the main plugin: open the run in the MLflow UI tab. */
  openInMlflow: ((card: IRunCard) => void) | null = null;

  private _cardRendered = new Signal<this, IRunCard>(this);
}

export const bridge = new TrackingBridge();
