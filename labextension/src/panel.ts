/**
 * The "Experiments" side panel: the current notebook's store, its experiments (opened on the one the notebook's
 * kernel writes to), a sortable and filterable table of runs with their total count, a run's details (metrics and
 * their charts first, then params, the user's tags, packages, and MLflow's own tags folded), and curves of several
 * runs compared. Laid out for the side bar's default 250 px: long texts are cut with an ellipsis and a tooltip.
 */

import { Widget } from '@lumino/widgets';

import { countRuns, getExperiments, getMetricHistory, getRun, searchRuns } from './api';
import { cardGoals } from './card';
import { renderChart } from './chartView';
import { defaultCompareMetric, NOTE_TAG, orderMetrics, runSections } from './details';
import { clear, h } from './dom';
import { formatDuration, formatNumber, formatTime, runCountText, runDuration, runStatusText } from './format';
import { IKernelTarget } from './kernel';
import {
  ATTRIBUTE_COLUMNS,
  dataColumns,
  defaultExperiment,
  filterPlaceholder,
  IColumn,
  nextSort,
  orderByFor,
  SortDirection
} from './query';
import { IExperiment, IRunCard, IRunDetail, IRunSummary, MetricGoal } from './types';

const PAGE_SIZE = 50;
const MAX_DETAIL_CHARTS = 6;
/** How long the first view waits for the kernel's answer before showing its best guess (then it may switch). */
const KERNEL_WAIT_MS = 800;

export interface IExperimentsPanelOptions {
  /** Open the MLflow UI tab, at an experiment or a run if given. */
  openMlflow: (experimentId?: string | null, runId?: string | null) => void;
  /** Ask the kernel of the notebook at `path` what it writes to (null: no kernel, not loaded, no answer). */
  askKernel?: (path: string) => Promise<IKernelTarget | null>;
}

/** Where the experiment shown came from (kept on the select as data-source, for tests and tooltips). */
type ExperimentSource = 'kernel' | 'notebook' | 'user' | '';

export class ExperimentsPanel extends Widget {
  constructor(options: IExperimentsPanelOptions) {
    super();
    this._options = options;
    this.id = 'jupyter-tracking-experiments';
    this.addClass('jp-TrackingPanel');
    this.title.caption = 'Experiments (jupyter_tracking)';

    this._store = h('div', { className: 'jp-TrackingPanel-store', text: 'No notebook open.' });
    this._experimentSelect = h('select', { className: 'jp-TrackingPanel-experiment', attrs: { 'aria-label': 'Experiment' } });
    this._experimentSelect.addEventListener('change', () => {
      this._experimentId = this._experimentSelect.value || null;
      this._setSource('user');
      this._selected.clear();
      void this.loadRuns();
    });
    this._filter = h('input', {
      className: 'jp-TrackingPanel-filter',
      attrs: { type: 'search', placeholder: 'filter runs', 'aria-label': 'Filter runs' }
    });
    this._filter.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this.loadRuns();
      }
    });
    this._error = h('div', { className: 'jp-TrackingPanel-error' });
    this._count = h('div', { className: 'jp-TrackingPanel-count' });
    this._table = h('div', { className: 'jp-TrackingPanel-tableWrap' });
    this._more = h('button', {
      className: 'jp-TrackingPanel-more',
      text: 'Load more runs',
      attrs: { type: 'button' },
      onClick: () => void this.loadRuns(true)
    });
    this._compare = h('div', { className: 'jp-TrackingPanel-compare' });
    this._details = h('div', { className: 'jp-TrackingPanel-details' });

    const toolbar = h('div', { className: 'jp-TrackingPanel-toolbar' }, [
      h('span', { className: 'jp-TrackingPanel-title', text: 'Experiments' }),
      h('button', {
        className: 'jp-TrackingPanel-refresh jp-Button jp-mod-minimal',
        text: 'Refresh',
        title: 'Reload experiments and runs',
        attrs: { type: 'button' },
        onClick: () => void this.refresh()
      }),
      h('button', {
        className: 'jp-TrackingPanel-open-ui jp-Button jp-mod-minimal',
        text: 'MLflow UI',
        title: "Open this experiment's runs in the MLflow UI, in a tab",
        attrs: { type: 'button' },
        onClick: () => this._options.openMlflow(this._experimentId)
      })
    ]);
    const filterRow = h('div', { className: 'jp-TrackingPanel-filterRow' }, [
      this._filter,
      h('button', { className: 'jp-Button jp-mod-minimal', text: 'Apply', attrs: { type: 'button' }, onClick: () => void this.loadRuns() })
    ]);
    for (const el of [toolbar, this._store, this._experimentSelect, filterRow, this._error, this._count, this._table, this._more, this._compare, this._details]) {
      this.node.appendChild(el);
    }
    this._more.hidden = true;
  }

  /** The notebook (API path) whose store is shown; reloads when it changes. */
  setPath(path: string): void {
    if (path === this._path && this._loaded) {
      return;
    }
    this._path = path;
    this._experimentId = null;
    this._setSource('');
    this._selected.clear();
    this._detailRunId = null;
    void this.refresh();
  }

  get path(): string {
    return this._path;
  }

  /** Remember which way a card's metrics improve (the kernel's goals, from the card's JSON) for sorting best first. */
  noteGoals(card: IRunCard): void {
    const known = this._goals.get(card.experiment_id) || {};
    this._goals.set(card.experiment_id, { ...known, ...cardGoals(card) });
  }

  private _goalOf(column: IColumn): MetricGoal {
    if (column.kind !== 'metric' || !this._experimentId) {
      return null;
    }
    return this._goals.get(this._experimentId)?.[column.key] ?? null;
  }

  /**
   * Reload experiments and runs, keeping the chosen experiment, filter, sort and the open run. Until the user
   * picks one, the experiment shown is the one the notebook's kernel writes to (asked each time: a first run
   * or `%track config --experiment` changes it), else the notebook's default, else the newest.
   */
  async refresh(): Promise<void> {
    const ticket = ++this._ticket;
    this._loaded = true;
    this._error.textContent = '';
    const path = this._path;
    const asked = this._options.askKernel ? this._options.askKernel(path).catch(() => null) : Promise.resolve(null);
    let answer;
    try {
      answer = await getExperiments(path);
    } catch (error) {
      if (ticket === this._ticket) {
        this._error.textContent = String((error as Error).message || error);
      }
      return;
    }
    if (ticket !== this._ticket) {
      return;
    }
    this._experiments = answer.experiments;
    this._store.textContent = answer.store.exists
      ? `Store: ${answer.store.description}`
      : `Store: ${answer.store.description} (no runs yet)`;
    this._store.title = `${answer.store.description}\n${answer.store.uri}`;
    const early = await Promise.race([asked, new Promise<null>(resolve => setTimeout(() => resolve(null), KERNEL_WAIT_MS))]);
    if (ticket !== this._ticket) {
      return;
    }
    this._pickExperiment(early);
    this._renderExperiments();
    await this.loadRuns();
    if (this._detailRunId) {
      await this.showRun(this._detailRunId);
    }
    if (!early) {
      // A busy kernel answers late: switch to its experiment then, unless the user chose one meanwhile.
      const late = await asked;
      if (late && ticket === this._ticket && this._source !== 'user') {
        const before = this._experimentId;
        this._pickExperiment(late);
        if (this._experimentId !== before) {
          this._renderExperiments();
          await this.loadRuns();
        }
      }
    }
  }

  private _pickExperiment(target: IKernelTarget | null): void {
    const known = !!this._experimentId && this._experiments.some(e => e.experiment_id === this._experimentId);
    if (known && this._source === 'user') {
      return;
    }
    const chosen = defaultExperiment(this._experiments, this._path, target);
    const fromKernel =
      !!target && !!chosen && this._experiments.some(e => e.experiment_id === chosen && (e.name === target.experiment || e.experiment_id === target.experiment_id));
    if (known && !fromKernel && this._source === 'kernel') {
      return; // the kernel did not answer this time: keep what it said before
    }
    this._experimentId = chosen;
    this._setSource(chosen ? (fromKernel ? 'kernel' : 'notebook') : '');
  }

  private _setSource(source: ExperimentSource): void {
    this._source = source;
    this._experimentSelect.dataset.source = source;
    this._experimentSelect.title =
      source === 'kernel'
        ? "The experiment this notebook's kernel writes to"
        : source === 'notebook'
          ? "The notebook's default experiment (its kernel did not say)"
          : '';
  }

  /** Load the first page of runs (or the next one with `more`). */
  async loadRuns(more = false): Promise<void> {
    const ticket = ++this._runsTicket;
    if (!this._experimentId) {
      this._runs = [];
      this._nextToken = null;
      this._total = null;
      this._renderTable();
      return;
    }
    const column = this._sort ? this._allColumns().find(c => c.id === this._sort!.column) : undefined;
    try {
      const page = await searchRuns(this._path, {
        experimentIds: [this._experimentId],
        filter: this._filter.value.trim(),
        orderBy: column ? orderByFor(column, this._sort!.direction) : undefined,
        maxResults: PAGE_SIZE,
        pageToken: more ? this._nextToken : null
      });
      if (ticket !== this._runsTicket) {
        return;
      }
      this._error.textContent = '';
      this._runs = more ? [...this._runs, ...page.runs] : page.runs;
      this._nextToken = page.next_page_token;
      this._total = page.total ?? null;
    } catch (error) {
      if (ticket !== this._runsTicket) {
        return;
      }
      this._error.textContent = String((error as Error).message || error);
      this._runs = [];
      this._nextToken = null;
      this._total = null;
    }
    if (this._runs.length) {
      this._filter.placeholder = filterPlaceholder(this._runs);
    }
    this._renderTable();
    if (this._total === null && this._nextToken && !more) {
      void this._countRuns(ticket);
    }
    await this._renderCompare();
  }

  /** The total of a query whose first page did not tell it (the store counts it apart: the page shows first). */
  private async _countRuns(ticket: number): Promise<void> {
    try {
      const answer = await countRuns(this._path, {
        experimentIds: [this._experimentId!],
        filter: this._filter.value.trim()
      });
      if (ticket === this._runsTicket && answer.total !== null) {
        this._total = answer.total;
        this._renderCount();
      }
    } catch {
      // The count stays "N runs, more"; the table itself is unaffected.
    }
  }

  /** Show one run's details (and select its experiment if it is another one). */
  async showRun(runId: string, experimentId?: string | null): Promise<void> {
    if (experimentId && experimentId !== this._experimentId && this._experiments.some(e => e.experiment_id === experimentId)) {
      this._experimentId = experimentId;
      this._setSource('user');
      this._renderExperiments();
      await this.loadRuns();
    }
    this._detailRunId = runId;
    this._renderTable();
    const ticket = ++this._detailTicket;
    let run: IRunDetail;
    try {
      run = await getRun(this._path, runId);
    } catch (error) {
      if (ticket === this._detailTicket) {
        clear(this._details);
        this._details.appendChild(h('div', { className: 'jp-TrackingPanel-error', text: String((error as Error).message || error) }));
      }
      return;
    }
    if (ticket !== this._detailTicket) {
      return;
    }
    clear(this._details);
    this._details.dataset.runId = run.run_id;
    this._details.appendChild(
      h('div', { className: 'jp-TrackingPanel-detailHeader' }, [
        h('span', {
          className: `jp-TrackingPanel-status jp-mod-${run.stale ? 'stale' : run.status.toLowerCase()}`,
          text: runStatusText(run),
          attrs: run.stale ? { title: 'Owned by a kernel on another machine that has shown no sign of life for 10 minutes' } : {}
        }),
        h('span', { className: 'jp-TrackingPanel-runName', text: run.run_name, title: run.run_name }),
        h('button', {
          className: 'jp-Button jp-mod-minimal',
          text: 'MLflow UI',
          title: 'Open this run in the MLflow UI tab',
          attrs: { type: 'button' },
          onClick: () => this._options.openMlflow(run.experiment_id, run.run_id)
        })
      ])
    );
    this._details.appendChild(
      h('div', {
        className: 'jp-TrackingPanel-detailMeta',
        text: `${formatTime(run.start_time)} · ${formatDuration(runDuration(run.start_time, run.end_time))} · ${run.run_id.slice(0, 8)}`,
        title: `run id ${run.run_id}`
      })
    );
    const note = run.tags[NOTE_TAG];
    if (note) {
      this._details.appendChild(h('div', { className: 'jp-TrackingPanel-note', text: note }));
    }
    // Metrics, with the charts of step metrics right under them; then params, the user's tags, packages and
    // MLflow's own tags (folded).
    const metrics = orderMetrics(run.metric_details);
    this._details.appendChild(
      keyValueTable(
        'Metrics',
        metrics.map(m => [m.key, m.points > 1 ? `${formatNumber(m.value)} (${m.points} steps)` : formatNumber(m.value)])
      )
    );
    const charts = h('div', { className: 'jp-TrackingPanel-charts' });
    this._details.appendChild(charts);
    this._details.appendChild(keyValueTable('Params', Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b))));
    const sections = runSections(run.tags);
    if (sections.userTags.length) {
      this._details.appendChild(keyValueTable('Tags', sections.userTags));
    }
    if (sections.packages.length) {
      this._details.appendChild(keyValueTable('Packages', sections.packages, false));
    }
    this._details.appendChild(
      keyValueTable(
        'Recorded by MLflow',
        sections.internalTags.map(([k, v]) => [k, v.length > 200 ? v.slice(0, 200) + '…' : v]),
        false
      )
    );
    const series = metrics.filter(m => m.points > 1).slice(0, MAX_DETAIL_CHARTS);
    for (const metric of series) {
      try {
        const history = await getMetricHistory(this._path, run.run_id, metric.key, 500);
        if (ticket !== this._detailTicket) {
          return;
        }
        charts.appendChild(renderChart(metric.key, [{ label: run.run_name, points: history.points.map(p => ({ x: p.step, y: p.value })) }]));
      } catch (error) {
        charts.appendChild(h('div', { className: 'jp-TrackingPanel-error', text: String((error as Error).message || error) }));
      }
    }
  }

  private _allColumns(): IColumn[] {
    return [...ATTRIBUTE_COLUMNS, ...dataColumns(this._runs)];
  }

  private _renderExperiments(): void {
    clear(this._experimentSelect);
    if (!this._experiments.length) {
      this._experimentSelect.appendChild(h('option', { text: 'No experiments yet', attrs: { value: '' } }));
    }
    for (const experiment of this._experiments) {
      const option = h('option', { text: experiment.name, title: experiment.name, attrs: { value: experiment.experiment_id } });
      option.selected = experiment.experiment_id === this._experimentId;
      this._experimentSelect.appendChild(option);
    }
  }

  private _renderCount(): void {
    this._count.textContent = this._experimentId ? runCountText(this._runs.length, this._total, !!this._nextToken) : '';
  }

  private _renderTable(): void {
    clear(this._table);
    this._more.hidden = !this._nextToken;
    this._renderCount();
    if (!this._runs.length) {
      this._table.appendChild(
        h('div', {
          className: 'jp-TrackingPanel-empty',
          text: this._experimentId ? 'No runs match.' : 'No runs yet: add %%track to a cell and run it.'
        })
      );
      return;
    }
    const columns = this._allColumns();
    const headerCells: HTMLElement[] = [h('th', { className: 'jp-TrackingPanel-select', text: '' })];
    for (const column of columns) {
      const sorted = this._sort && this._sort.column === column.id ? this._sort.direction : null;
      const goal = this._goalOf(column);
      const better = goal === 'min' ? ' (lower is better)' : goal === 'max' ? ' (higher is better)' : '';
      headerCells.push(
        h('th', {
          className: `jp-TrackingPanel-sortable jp-mod-${column.kind}${column.key === 'run_name' ? ' jp-TrackingPanel-nameCell' : ''}`,
          text: column.label + (sorted === 'ASC' ? ' ▲' : sorted === 'DESC' ? ' ▼' : ''),
          title: `${column.label}: sort by ${column.kind === 'attr' ? column.label : column.kind + ' ' + column.key}${better}`,
          attrs: { 'data-column': column.id, 'aria-sort': sorted === 'ASC' ? 'ascending' : sorted === 'DESC' ? 'descending' : 'none' },
          onClick: () => {
            this._sort = nextSort(this._sort, column, goal);
            void this.loadRuns();
          }
        })
      );
    }
    const rows = this._runs.map(run => {
      const checkbox = h('input', { attrs: { type: 'checkbox', 'aria-label': `Compare ${run.run_name}` } });
      checkbox.checked = this._selected.has(run.run_id);
      checkbox.addEventListener('click', event => event.stopPropagation());
      checkbox.addEventListener('change', () => {
        if (checkbox.checked) {
          this._selected.add(run.run_id);
        } else {
          this._selected.delete(run.run_id);
        }
        void this._renderCompare();
      });
      const cells: HTMLElement[] = [h('td', { className: 'jp-TrackingPanel-select' }, [checkbox])];
      for (const column of columns) {
        const text = cellText(run, column);
        cells.push(
          h('td', {
            className: `jp-mod-${column.kind}${column.key === 'run_name' && column.kind === 'attr' ? ' jp-TrackingPanel-nameCell' : ''}`,
            text,
            title: column.kind === 'metric' && column.key in run.metrics ? `${column.key} = ${run.metrics[column.key]}` : text
          })
        );
      }
      const row = h('tr', {
        className: `jp-TrackingPanel-run${run.run_id === this._detailRunId ? ' jp-mod-active' : ''}`,
        attrs: { 'data-run-id': run.run_id, 'data-status': run.stale ? 'STALE' : run.status },
        onClick: () => void this.showRun(run.run_id)
      }, cells); // prettier-ignore
      return row;
    });
    this._table.appendChild(
      h('table', { className: 'jp-TrackingPanel-runs' }, [h('thead', {}, [h('tr', {}, headerCells)]), h('tbody', {}, rows)])
    );
  }

  private async _renderCompare(): Promise<void> {
    const ticket = ++this._compareTicket;
    clear(this._compare);
    const selected = this._runs.filter(r => this._selected.has(r.run_id));
    if (selected.length < 2) {
      if (this._runs.length > 1) {
        this._compare.appendChild(h('div', { className: 'jp-TrackingPanel-hint', text: 'Tick two or more runs to compare their curves.' }));
      }
      return;
    }
    const keys = Array.from(new Set(selected.flatMap(r => Object.keys(r.metrics)))).sort();
    if (!keys.length) {
      this._compare.appendChild(h('div', { className: 'jp-TrackingPanel-hint', text: 'The selected runs have no metrics.' }));
      return;
    }
    if (!this._compareKey || !keys.includes(this._compareKey)) {
      // Which metrics have a history (a curve to compare): from the selected runs' details.
      const points: Record<string, number> = {};
      const details = await Promise.all(selected.slice(0, 4).map(r => getRun(this._path, r.run_id).catch(() => null)));
      if (ticket !== this._compareTicket) {
        return;
      }
      for (const detail of details) {
        for (const m of detail?.metric_details ?? []) {
          points[m.key] = Math.max(points[m.key] || 0, m.points);
        }
      }
      this._compareKey = defaultCompareMetric(keys, points, this._compareKey);
    }
    const select = h('select', { className: 'jp-TrackingPanel-compareKey', attrs: { 'aria-label': 'Metric to compare' } });
    for (const key of keys) {
      const option = h('option', { text: key, attrs: { value: key } });
      option.selected = key === this._compareKey;
      select.appendChild(option);
    }
    select.addEventListener('change', () => {
      this._compareKey = select.value;
      void this._renderCompare();
    });
    this._compare.appendChild(
      h('div', { className: 'jp-TrackingPanel-compareHeader' }, [h('span', { text: `Compare ${selected.length}:` }), select])
    );
    const key = this._compareKey!;
    const series = [];
    for (const run of selected) {
      try {
        const history = await getMetricHistory(this._path, run.run_id, key, 500);
        series.push({ label: `${run.run_name} · ${run.run_id.slice(0, 6)}`, points: history.points.map(p => ({ x: p.step, y: p.value })) });
      } catch (error) {
        series.push({ label: `${run.run_name} (${(error as Error).message})`, points: [] });
      }
      if (ticket !== this._compareTicket) {
        return;
      }
    }
    this._compare.appendChild(renderChart(key, series));
  }

  private _options: IExperimentsPanelOptions;
  private _path = '';
  private _loaded = false;
  private _experiments: IExperiment[] = [];
  private _experimentId: string | null = null;
  private _source: ExperimentSource = '';
  private _total: number | null = null;
  private _runs: IRunSummary[] = [];
  private _nextToken: string | null = null;
  private _sort: { column: string; direction: SortDirection } | null = null;
  private _goals = new Map<string, Record<string, MetricGoal>>();
  private _selected = new Set<string>();
  private _detailRunId: string | null = null;
  private _compareKey: string | null = null;
  private _ticket = 0;
  private _runsTicket = 0;
  private _detailTicket = 0;
  private _compareTicket = 0;
  private _store: HTMLElement;
  private _experimentSelect: HTMLSelectElement;
  private _filter: HTMLInputElement;
  private _error: HTMLElement;
  private _count: HTMLElement;
  private _table: HTMLElement;
  private _more: HTMLButtonElement;
  private _compare: HTMLElement;
  private _details: HTMLElement;
}

function cellText(run: IRunSummary, column: IColumn): string {
  if (column.kind === 'metric') {
    return column.key in run.metrics ? formatNumber(run.metrics[column.key]) : '';
  }
  if (column.kind === 'param') {
    return run.params[column.key] ?? '';
  }
  switch (column.key) {
    case 'run_name':
      return run.run_name;
    case 'status':
      return runStatusText(run);
    case 'start_time':
      return formatTime(run.start_time);
    default:
      return '';
  }
}

/** A folding section of key/value rows; long keys and values are cut with an ellipsis, whole in the tooltip. */
function keyValueTable(title: string, rows: [string, string][], open = true): HTMLElement {
  const body = rows.map(([k, v]) => h('tr', {}, [h('th', { text: k, title: k }), h('td', { text: v, title: v })]));
  const slug = title.toLowerCase().replace(/[^a-z]+/g, '-');
  return h('details', { className: `jp-TrackingPanel-kv jp-mod-${slug}`, attrs: open ? { open: '' } : {} }, [
    h('summary', { text: `${title} (${rows.length})` }),
    h('table', {}, [h('tbody', {}, body)])
  ]);
}
