/**
 * Draws a small SVG line chart (one or more series against the step). Geometry comes from chart.ts.
 */

import { extent, ISeries, linePath, niceTicks, thin } from './chart';
import { h } from './dom';
import { formatTick } from './format';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 280;
const HEIGHT = 140;
const MARGIN = { left: 44, right: 8, top: 8, bottom: 20 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

export function renderChart(title: string, series: ISeries[]): HTMLElement {
  const shown = series.map(s => ({ ...s, points: thin(s.points, 500) }));
  const xs = shown.flatMap(s => s.points.map(p => p.x));
  const ys = shown.flatMap(s => s.points.map(p => p.y));
  const xDomain = extent(xs);
  const yDomain = extent(ys);
  const innerW = WIDTH - MARGIN.left - MARGIN.right;
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;

  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'jp-TrackingChart-svg', role: 'img' });
  const label = svg('title', {});
  label.textContent = title;
  root.appendChild(label);
  const plot = svg('g', { transform: `translate(${MARGIN.left},${MARGIN.top})` });
  root.appendChild(plot);
  for (const tick of niceTicks(yDomain, 4)) {
    const y = innerH - ((tick - yDomain.min) / (yDomain.max - yDomain.min || 1)) * innerH;
    plot.appendChild(svg('line', { x1: 0, x2: innerW, y1: y, y2: y, class: 'jp-TrackingChart-grid' }));
    const text = svg('text', { x: -4, y: y + 3, 'text-anchor': 'end', class: 'jp-TrackingChart-tick' });
    text.textContent = formatTick(tick);
    plot.appendChild(text);
  }
  for (const tick of niceTicks(xDomain, 4)) {
    const x = ((tick - xDomain.min) / (xDomain.max - xDomain.min || 1)) * innerW;
    const text = svg('text', { x, y: innerH + 14, 'text-anchor': 'middle', class: 'jp-TrackingChart-tick' });
    text.textContent = formatTick(tick);
    plot.appendChild(text);
  }
  shown.forEach((s, index) => {
    const path = svg('path', {
      d: linePath(s.points, xDomain, yDomain, innerW, innerH),
      class: `jp-TrackingChart-line jp-TrackingChart-color${index % 8}`
    });
    const name = svg('title', {});
    name.textContent = s.label;
    path.appendChild(name);
    plot.appendChild(path);
  });

  const legend = h(
    'div',
    { className: 'jp-TrackingChart-legend' },
    series.length > 1
      ? series.map((s, index) =>
          h('span', { className: `jp-TrackingChart-key jp-TrackingChart-color${index % 8}`, text: s.label })
        )
      : []
  );
  const figure = h('figure', { className: 'jp-TrackingChart', attrs: { 'data-metric': title } }, [
    h('figcaption', { text: title }),
    legend
  ]);
  figure.insertBefore(root, legend);
  return figure;
}
