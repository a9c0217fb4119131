import { defaultCompareMetric, isInternalTag, orderMetrics, packageRows, runSections } from '../details';

describe('runSections', () => {
  const tags = {
    team: 'vision',
    'mlflow.source.name': 'train.ipynb',
    'mlflow.note.content': 'a note',
    'jupyter_tracking.cell_id': 'c1',
    'jupyter_tracking.packages': '{"numpy": "2.1.0", "mlflow": "3.17.2"}',
    Owner: 'me'
  };
  it("puts the user's tags apart from MLflow's and ours, packages as rows", () => {
    const sections = runSections(tags);
    expect(sections.userTags).toEqual([
      ['Owner', 'me'],
      ['team', 'vision']
    ]);
    expect(sections.packages).toEqual([
      ['mlflow', '3.17.2'],
      ['numpy', '2.1.0']
    ]);
    expect(sections.internalTags.map(([k]) => k)).toEqual(['jupyter_tracking.cell_id', 'mlflow.source.name']);
    expect(isInternalTag('mlflow.user')).toBe(true);
    expect(isInternalTag('mlflowish')).toBe(false);
  });
  it('keeps an unreadable packages tag as a plain internal tag', () => {
    expect(packageRows('not json')).toEqual([]);
    expect(packageRows('[1, 2]')).toEqual([]);
    const sections = runSections({ 'jupyter_tracking.packages': '{oops' });
    expect(sections.packages).toEqual([]);
    expect(sections.internalTags).toEqual([['jupyter_tracking.packages', '{oops']]);
  });
});

describe('orderMetrics', () => {
  it('puts step metrics (with charts) before single values', () => {
    const metrics = [
      { key: 'acc', value: 0.9, step: 0, points: 1 },
      { key: 'loss', value: 0.1, step: 9, points: 10 },
      { key: 'lr', value: 0.1, step: 0, points: 1 },
      { key: 'val_loss', value: 0.2, step: 9, points: 10 }
    ];
    expect(orderMetrics(metrics).map(m => m.key)).toEqual(['loss', 'val_loss', 'acc', 'lr']);
  });
});

describe('defaultCompareMetric', () => {
  it('picks a metric with a history, not a single value', () => {
    expect(defaultCompareMetric(['acc', 'loss'], { acc: 1, loss: 10 }, null)).toBe('loss');
    expect(defaultCompareMetric(['acc', 'loss'], { acc: 1, loss: 1 }, null)).toBe('acc');
    expect(defaultCompareMetric(['acc', 'loss'], {}, 'acc')).toBe('acc');
    expect(defaultCompareMetric(['acc', 'loss'], { loss: 5 }, 'gone')).toBe('loss');
    expect(defaultCompareMetric([], {}, null)).toBeNull();
  });
});
