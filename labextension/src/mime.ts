/**
 * The MIME renderer for `application/vnd.jupyter-tracking.run+json`: the run card under a tracked cell.
 * Re-rendered on each display update, so a running run's card shows its latest metrics.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { bridge } from './bridge';
import { cardView, ICardView, parseCard } from './card';
import { h } from './dom';
import { isSafeUrl } from './format';
import { IRunCard, RUN_MIME } from './types';

export class RunCardWidget extends Widget implements IRenderMime.IRenderer {
  constructor() {
    super();
    this.addClass('jp-TrackingCard');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const card = parseCard(model.data[RUN_MIME]);
    this.node.replaceChildren();
    if (!card) {
      this.node.appendChild(h('div', { className: 'jp-TrackingCard-invalid', text: 'Unreadable run card.' }));
      return;
    }
    this.node.dataset.status = card.status;
    this.node.dataset.runId = card.run_id;
    this.node.appendChild(renderCard(card, cardView(card)));
    bridge.announce(card);
  }
}

function link(text: string, title: string, onClick: () => void): HTMLElement {
  return h('button', {
    className: 'jp-TrackingCard-link',
    text,
    title,
    attrs: { type: 'button' },
    onClick: event => {
      event.preventDefault();
      onClick();
    }
  });
}

function renderCard(card: IRunCard, view: ICardView): HTMLElement {
  const links = h('span', { className: 'jp-TrackingCard-links' });
  links.appendChild(
    link('Open run', 'Show this run in the Experiments panel', () => {
      if (bridge.openRun) {
        bridge.openRun(card);
      }
    })
  );
  if (bridge.openInMlflow) {
    links.appendChild(link('MLflow UI', 'Open this run in the MLflow UI tab', () => bridge.openInMlflow!(card)));
  } else if (isSafeUrl(card.ui_url)) {
    links.appendChild(
      h('a', { className: 'jp-TrackingCard-link', text: 'MLflow UI', attrs: { href: card.ui_url!, target: '_blank', rel: 'noopener noreferrer' } })
    );
  }

  const header = h('div', { className: 'jp-TrackingCard-header' }, [
    h('span', {
      className: `jp-TrackingCard-status jp-mod-${card.status.toLowerCase()}`,
      text: view.statusLabel,
      title: `Run status: ${card.status}`
    }),
    h('span', { className: 'jp-TrackingCard-name', text: view.title }),
    view.newBest ? h('span', { className: 'jp-TrackingCard-badge', text: 'new best', title: 'A metric reached the best value of the experiment in this run' }) : null,
    h('span', { className: 'jp-TrackingCard-meta', text: [view.subtitle, view.duration].filter(Boolean).join(' · ') }),
    links
  ]);

  const body = h('div', { className: 'jp-TrackingCard-body' });
  if (view.note) {
    body.appendChild(h('div', { className: 'jp-TrackingCard-note', text: view.note }));
  }
  if (view.metrics.length) {
    const rows = view.metrics.map(m => {
      const cells = [
        h('td', { className: 'jp-TrackingCard-key', text: m.key }),
        h('td', { className: 'jp-TrackingCard-value', text: m.value }),
        h('td', {
          className: `jp-TrackingCard-delta ${m.vsPrevious ? 'jp-mod-' + m.vsPrevious.direction : ''}`,
          text: m.vsPrevious ? m.vsPrevious.text : '',
          title: m.goalNote ?? 'Change since the previous run of this cell'
        }),
        h('td', {
          className: `jp-TrackingCard-best ${m.newBest ? 'jp-mod-newBest' : m.isBest ? 'jp-mod-best' : m.vsBest ? 'jp-mod-' + m.vsBest.direction : ''}`,
          text: m.newBest ? 'new best' : m.isBest ? 'best' : m.vsBest ? `vs best ${m.vsBest.text}` : '',
          title: m.newBest ? 'Better than the previous run and the best of the experiment' : 'Against the best run of the experiment'
        }),
        h('td', { className: 'jp-TrackingCard-steps', text: m.steps > 1 ? `${m.steps} steps` : '' })
      ];
      return h('tr', { attrs: { 'data-metric': m.key } }, cells);
    });
    body.appendChild(
      h('table', { className: 'jp-TrackingCard-metrics' }, [
        h('caption', { text: 'metrics' }),
        h('tbody', {}, rows)
      ])
    );
  }
  if (view.noChange) {
    body.appendChild(h('div', { className: 'jp-TrackingCard-same', text: 'no change since the previous run' }));
  }
  const params = [...view.changedParams, ...view.otherParams];
  if (params.length) {
    const list = h('div', { className: 'jp-TrackingCard-params' }, [h('span', { className: 'jp-TrackingCard-label', text: 'params' })]);
    for (const p of params) {
      list.appendChild(
        h(
          'span',
          {
            className: `jp-TrackingCard-param ${p.changed ? 'jp-mod-changed' : ''}`,
            title: p.note ? `${p.key}: ${p.value} (${p.note})` : `${p.key}: ${p.value}`,
            attrs: { 'data-param': p.key }
          },
          [
            h('span', { className: 'jp-TrackingCard-key', text: p.key }),
            document.createTextNode('='),
            h('span', { className: 'jp-TrackingCard-value', text: p.value }),
            p.note ? h('span', { className: 'jp-TrackingCard-was', text: ` (${p.note})` }) : null
          ]
        )
      );
    }
    body.appendChild(list);
  }
  if (view.withheld) {
    body.appendChild(
      h('div', { className: 'jp-TrackingCard-withheld', text: `not logged (look like secrets): ${view.withheld}` })
    );
  }
  return h('div', { className: 'jp-TrackingCard-inner' }, [header, body]);
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [RUN_MIME],
  defaultRank: 0,
  createRenderer: () => new RunCardWidget()
};

const extension: IRenderMime.IExtension = {
  id: 'jupyter-tracking:run-card',
  description: 'Renders jupyter_tracking run cards.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
