/**
 * The MLflow UI in a JupyterLab tab: an iframe on the same-origin proxy the server extension provides, opened on
 * an experiment's runs or a run (MLflow's training view). While the server starts, a progress bar with the
 * elapsed time and what the server is doing.
 */

import { Widget } from '@lumino/widgets';

import { getMlflowUIState, IUIStartState, openMlflowUI } from './api';
import { h } from './dom';
import { applyMlflowDefaults } from './mlflowPrefs';
import { startProgress } from './progress';

const POLL_MS = 500;

export class MlflowTab extends Widget {
  constructor() {
    super();
    this.id = `jupyter-tracking-mlflow-${MlflowTab._count++}`;
    this.addClass('jp-TrackingMlflow');
    this.title.label = 'MLflow UI';
    this.title.closable = true;
    this._bar = h('progress', { className: 'jp-TrackingMlflow-progress' });
    this._text = h('span', { className: 'jp-TrackingMlflow-text', text: 'Starting the MLflow UI…' });
    this._message = h('div', { className: 'jp-TrackingMlflow-message', attrs: { role: 'status' } }, [this._bar, this._text]);
    this._frame = h('iframe', {
      className: 'jp-TrackingMlflow-frame',
      attrs: {
        title: 'MLflow UI',
        sandbox: 'allow-scripts allow-same-origin allow-forms allow-popups allow-downloads allow-modals'
      }
    });
    this._frame.hidden = true;
    this.node.appendChild(this._message);
    this.node.appendChild(this._frame);
  }

  /** The notebook whose store this tab shows. */
  get path(): string | null {
    return this._path;
  }

  /** Start (or reuse) the server for `path`'s store, then show `route` (an MLflow hash route) in it. */
  async open(path: string, route: string): Promise<void> {
    this._path = path;
    this._message.hidden = false;
    this._message.classList.remove('jp-mod-error');
    this._bar.hidden = false;
    const began = Date.now();
    let state: IUIStartState | null = null;
    const show = () => {
      const { text, fraction } = startProgress(state, Date.now() - began);
      this._text.textContent = text;
      if (fraction === null) {
        this._bar.removeAttribute('value');
      } else {
        this._bar.max = 1;
        this._bar.value = fraction;
      }
    };
    show();
    let polling = true;
    const poll = async () => {
      while (polling) {
        await new Promise(resolve => setTimeout(resolve, POLL_MS));
        if (!polling) {
          break;
        }
        state = await getMlflowUIState(path).catch(() => state);
        show();
      }
    };
    void poll();
    try {
      const { url } = await openMlflowUI(path);
      this._baseUrl = url;
      this.navigate(route);
    } catch (error) {
      this._text.textContent = `The MLflow UI could not be started: ${(error as Error).message || error}`;
      this._message.classList.add('jp-mod-error');
      this._bar.hidden = true;
      this._frame.hidden = true;
    } finally {
      polling = false;
    }
  }

  /** Show another page of the already running UI. */
  navigate(route: string): void {
    if (!this._baseUrl) {
      return;
    }
    applyMlflowDefaults(window.localStorage);
    this._frame.src = this._baseUrl + route;
    this._frame.dataset.src = this._frame.src;
    this._frame.hidden = false;
    this._message.hidden = true;
  }

  get ready(): boolean {
    return this._baseUrl !== null;
  }

  private static _count = 0;
  private _path: string | null = null;
  private _baseUrl: string | null = null;
  private _message: HTMLElement;
  private _bar: HTMLProgressElement;
  private _text: HTMLElement;
  private _frame: HTMLIFrameElement;
}
