import {
  dataColumns,
  defaultExperiment,
  filterPlaceholder,
  mlflowRoute,
  nextSort,
  orderByFor,
  queryString,
  quoteKey
} from '../query';
import { IRunSummary } from '../types';

function run(id: string, params: Record<string, string>, metrics: Record<string, number>): IRunSummary {
  return { run_id: id, run_name: id, experiment_id: '1', status: 'FINISHED', start_time: 1, end_time: 2, params, metrics, tags: {} };
}

describe('order by', () => {
  it('builds MLflow order_by clauses, quoting odd keys', () => {
    expect(orderByFor({ id: 'metric:val_loss', kind: 'metric', key: 'val_loss', label: '' }, 'ASC')).toBe('metrics.val_loss ASC');
    expect(orderByFor({ id: 'param:a b', kind: 'param', key: 'a b', label: '' }, 'DESC')).toBe('params.`a b` DESC');
    expect(orderByFor({ id: 'attr:start_time', kind: 'attr', key: 'start_time', label: '' }, 'DESC')).toBe('attributes.start_time DESC');
    expect(quoteKey('performance.f1')).toBe('performance.f1');
    expect(quoteKey('loss/train')).toBe('`loss/train`');
    expect(quoteKey('a`b c')).toBe('`ab c`');
  });
  it('sorts metrics high first on the first click and flips on the second', () => {
    const metric = { id: 'metric:acc', kind: 'metric' as const, key: 'acc', label: 'acc' };
    const param = { id: 'param:lr', kind: 'param' as const, key: 'lr', label: 'lr' };
    const first = nextSort(null, metric);
    expect(first).toEqual({ column: 'metric:acc', direction: 'DESC' });
    expect(nextSort(first, metric)).toEqual({ column: 'metric:acc', direction: 'ASC' });
    expect(nextSort(first, param)).toEqual({ column: 'param:lr', direction: 'ASC' });
  });
  it('sorts a metric best first by the goal the kernel sent', () => {
    const loss = { id: 'metric:val_loss', kind: 'metric' as const, key: 'val_loss', label: 'val_loss' };
    const reward = { id: 'metric:reward', kind: 'metric' as const, key: 'reward', label: 'reward' };
    expect(nextSort(null, loss, 'min')).toEqual({ column: 'metric:val_loss', direction: 'ASC' });
    expect(nextSort(null, reward, 'max')).toEqual({ column: 'metric:reward', direction: 'DESC' });
    expect(nextSort(null, loss, null)).toEqual({ column: 'metric:val_loss', direction: 'DESC' }); // unknown: as before
    expect(nextSort({ column: 'metric:val_loss', direction: 'ASC' }, loss, 'min').direction).toBe('DESC');
  });
});

describe('dataColumns', () => {
  it('lists metrics then params, varying keys before constant ones', () => {
    const runs = [run('a', { lr: '0.1', seed: '1' }, { loss: 1, acc: 0.5 }), run('b', { lr: '0.01', seed: '1' }, { loss: 0.5, acc: 0.5 })];
    expect(dataColumns(runs).map(c => c.id)).toEqual(['metric:loss', 'metric:acc', 'param:lr', 'param:seed']);
  });
  it('caps each kind', () => {
    const metrics: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      metrics[`m${i}`] = i;
    }
    expect(dataColumns([run('a', {}, metrics)], 5)).toHaveLength(5);
  });
});

describe('queryString', () => {
  it('encodes values, repeats arrays and drops empty ones', () => {
    expect(queryString({ path: 'a b/n.ipynb', filter: "params.lr = '0.1'", x: '', y: null, ids: ['1', '2'] })).toBe(
      "?path=a%20b%2Fn.ipynb&filter=params.lr%20%3D%20'0.1'&ids=1&ids=2"
    );
    expect(queryString({})).toBe('');
  });
});

describe('defaultExperiment', () => {
  const experiments = [
    { experiment_id: '3', name: 'recent' },
    { experiment_id: '1', name: 'train' },
    { experiment_id: '7', name: 'configured' }
  ];
  it("prefers the experiment named after the notebook, else the most recent", () => {
    expect(defaultExperiment(experiments, 'work/train.ipynb')).toBe('1');
    expect(defaultExperiment(experiments, 'other.ipynb')).toBe('3');
    expect(defaultExperiment([], 'x.ipynb')).toBeNull();
  });
  it("prefers the experiment the notebook's kernel writes to, by id then by name", () => {
    expect(defaultExperiment(experiments, 'work/train.ipynb', { experiment: 'other-name', experiment_id: '3' })).toBe('3');
    expect(defaultExperiment(experiments, 'work/train.ipynb', { experiment: 'configured', experiment_id: null })).toBe('7');
    // The kernel's experiment has no run yet (not in the store): the notebook's default, then the newest.
    expect(defaultExperiment(experiments, 'work/train.ipynb', { experiment: 'nowhere', experiment_id: null })).toBe('1');
  });
});

describe('mlflowRoute', () => {
  it('points at a run, an experiment or the home page', () => {
    expect(mlflowRoute('1', 'abc')).toBe('#/experiments/1/runs/abc?workflowType=machine_learning');
    expect(mlflowRoute('1')).toBe('#/experiments/1/runs?workflowType=machine_learning');
    expect(mlflowRoute()).toBe('#/experiments?workflowType=machine_learning');
    expect(mlflowRoute('1/../2')).toBe('#/experiments/1%2F..%2F2/runs?workflowType=machine_learning');
  });
});

describe('filterPlaceholder', () => {
  it("builds the example from the experiment's own names", () => {
    const runs = [{ metrics: { acc: 0.9123 }, params: { 'batch size': "3'2" } }];
    expect(filterPlaceholder(runs)).toBe("filter, e.g. metrics.acc < 0.91 and params.`batch size` = '32'");
    expect(filterPlaceholder([{ metrics: {}, params: {} }])).toBe('filter, e.g. metrics.loss < 0.5');
  });
});
