/**
 * The MLflow UI in a JupyterLab tab: an iframe on the same-origin proxy the server extension provides.
 */

import { Widget } from '@lumino/widgets';

import { openMlflowUI } from './api';
import { h } from './dom';

export class MlflowTab extends Widget {
  constructor() {
    super();
    this.id = `jupyter-tracking-mlflow-${MlflowTab._count++}`;
    this.addClass('jp-TrackingMlflow');
    this.title.label = 'MLflow UI';
    this.title.closable = true;
    this._message = h('div', { className: 'jp-TrackingMlflow-message', text: 'Starting the MLflow UI…' });
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
    this._message.textContent = 'Starting the MLflow UI…';
    this._message.hidden = false;
    try {
      const { url } = await openMlflowUI(path);
      this._baseUrl = url;
      this.navigate(route);
    } catch (error) {
      this._message.textContent = `The MLflow UI could not be started: ${(error as Error).message || error}`;
      this._message.classList.add('jp-mod-error');
      this._frame.hidden = true;
    }
  }

  /** Show another page of the already running UI. */
  navigate(route: string): void {
    if (!this._baseUrl) {
      return;
    }
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
  private _frame: HTMLIFrameElement;
}
