import { pickMainMetric, statusText } from '../status';

describe('pickMainMetric', () => {
  it('prefers the metric being trained (most steps)', () => {
    expect(pickMainMetric([{ key: 'accuracy', steps: 1 }, { key: 'train_loss', steps: 20 }])).toBe('train_loss');
  });
  it('breaks ties with a loss, then an accuracy-like name', () => {
    expect(pickMainMetric([{ key: 'accuracy' }, { key: 'epoch_time' }, { key: 'val_loss' }, { key: 'loss' }])).toBe('val_loss');
    expect(pickMainMetric([{ key: 'epoch_time' }, { key: 'f1' }])).toBe('f1');
    expect(pickMainMetric([{ key: 'b' }, { key: 'a' }])).toBe('b');
    expect(pickMainMetric([])).toBeNull();
  });
});

describe('statusText', () => {
  it('shows the run, the elapsed time and the latest main metric', () => {
    const state = { runName: 'lr-0.1', startedAt: 0, metricKey: 'val_loss', metricValue: 0.23456 };
    expect(statusText(state, 65000)).toBe('tracking lr-0.1 · 1 min 05 s · val_loss 0.2346');
  });
  it('works before the run has a name or a metric', () => {
    expect(statusText({ runName: null, startedAt: 0, metricKey: null, metricValue: null }, 2000)).toBe('tracking run · 2.0 s');
  });
});
