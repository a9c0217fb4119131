import { cardGoals, cardView, parseCard } from '../card';

const base = {
  version: 1,
  run_id: 'abc123',
  run_name: 'lr-0.01',
  experiment_id: '1',
  experiment_name: 'iris',
  status: 'FINISHED',
  start_time: 1000,
  end_time: 66000,
  duration_s: 65,
  tracking_uri: 'sqlite:///x/mlflow.db',
  notebook: 'train.ipynb',
  cell_id: 'c1',
  previous_run_id: 'prev',
  best_run_id: 'other',
  params: [
    { key: 'lr', value: '0.01', previous: '0.1', changed: true },
    { key: 'layers', value: '[64, 32]', previous: '[64, 32]', changed: false },
    { key: 'dropout', value: '0.2', previous: null, changed: true }
  ],
  metrics: [
    { key: 'val_loss', value: 0.2, previous: 0.25, best: 0.15, goal: 'min', steps: 10 },
    { key: 'accuracy', value: 0.9, previous: 0.8, best: 0.9, goal: 'max', steps: 1 }
  ],
  withheld: ['api_key'],
  ui_url: null
};

describe('parseCard', () => {
  it('rejects what is not a run card', () => {
    expect(parseCard(null)).toBeNull();
    expect(parseCard('x')).toBeNull();
    expect(parseCard([])).toBeNull();
    expect(parseCard({ run_name: 'no id' })).toBeNull();
  });
  it('fills missing fields with neutral values and drops malformed entries', () => {
    const card = parseCard({ run_id: 'r', params: [{ key: 'a', value: 1 }, 'junk', { value: 2 }], metrics: [{ key: 'm', value: 'NaN' }] })!;
    expect(card.run_name).toBe('r');
    expect(card.status).toBe('FINISHED');
    expect(card.params).toEqual([{ key: 'a', value: '1', previous: null, changed: false }]);
    expect(card.metrics).toEqual([{ key: 'm', value: null, previous: null, best: null, goal: null, steps: 0 }]);
    expect(card.withheld).toEqual([]);
  });
  it('keeps markup in names as plain text', () => {
    expect(parseCard({ ...base, run_name: '<img src=x onerror=alert(1)>' })!.run_name).toBe('<img src=x onerror=alert(1)>');
  });
});

describe('cardView', () => {
  it('puts changed params first with what they were', () => {
    const view = cardView(parseCard(base)!);
    expect(view.changedParams.map(p => [p.key, p.note])).toEqual([
      ['lr', 'was 0.1'],
      ['dropout', 'new']
    ]);
    expect(view.otherParams.map(p => p.key)).toEqual(['layers']);
  });
  it('compares metrics with the previous and the best run, by goal', () => {
    const view = cardView(parseCard(base)!);
    const loss = view.metrics[0];
    expect(loss.value).toBe('0.2000');
    expect(loss.vsPrevious!.direction).toBe('better');
    expect(loss.vsBest!.direction).toBe('worse');
    expect(loss.isBest).toBe(false);
    const acc = view.metrics[1];
    expect(acc.vsPrevious!.direction).toBe('better');
    expect(acc.isBest).toBe(true);
    expect(acc.vsBest).toBeNull();
  });
  it('takes the goal from the JSON and never guesses one from the name', () => {
    const card = parseCard({
      ...base,
      metrics: [
        { key: 'reward', value: 5, previous: 4, best: 6, goal: 'max', steps: 1 },
        { key: 'val_loss', value: 0.2, previous: 0.25, best: null, goal: null, steps: 1 },
        { key: 'weird', value: 3, previous: 2, best: null, goal: 'sideways', steps: 1 },
        { key: 'latency', value: 3, previous: 2, best: null, steps: 1 }
      ]
    })!;
    expect(cardGoals(card)).toEqual({ reward: 'max', val_loss: null, weird: null, latency: null });
    const [reward, loss, weird, latency] = cardView(card).metrics;
    expect(reward.vsPrevious!.direction).toBe('better');
    expect(reward.vsBest!.direction).toBe('worse');
    expect(reward.goalNote).toBeNull();
    for (const unknown of [loss, weird, latency]) {
      expect(unknown.vsPrevious!.direction).toBe('changed');
      expect(unknown.goal).toBeNull();
      expect(unknown.goalNote).toContain(`%track config --goal ${unknown.key}:max`);
    }
  });
  it('never calls a metric without a goal the best, even on the best run', () => {
    const card = parseCard({
      ...base,
      best_run_id: 'abc123',
      metrics: [
        { key: 'acc', value: 0.9, previous: 0.8, best: 0.9, goal: 'max', steps: 1 },
        { key: 'weird', value: 3, previous: 2, best: 3, goal: null, steps: 1 }
      ]
    })!;
    const [acc, weird] = cardView(card).metrics;
    expect(acc.isBest).toBe(true);
    expect(weird.isBest).toBe(false);
    expect(weird.vsBest).toBeNull();
  });
  it('highlights nothing on the first run of a cell', () => {
    const view = cardView(parseCard({ ...base, previous_run_id: null })!);
    expect(view.firstRun).toBe(true);
    expect(view.changedParams).toEqual([]);
    expect(view.metrics.every(m => m.vsPrevious === null)).toBe(true);
  });
  it('marks every metric best when the run is the best run', () => {
    const view = cardView(parseCard({ ...base, best_run_id: 'abc123' })!);
    expect(view.metrics.every(m => m.isBest)).toBe(true);
  });
  it('shows a running run with its elapsed time', () => {
    const view = cardView(parseCard({ ...base, status: 'RUNNING', duration_s: null, end_time: null, start_time: 1000 })!, 31000);
    expect(view.statusLabel).toBe('running');
    expect(view.duration).toBe('30 s');
  });
  it('names withheld secrets, not their values', () => {
    expect(cardView(parseCard(base)!).withheld).toBe('api_key');
    expect(cardView(parseCard(base)!).statusLabel).toBe('finished');
    expect(cardView(parseCard({ ...base, status: 'KILLED' })!).statusLabel).toBe('interrupted');
  });
  it('shows changes only where something changed, and "no change" once otherwise', () => {
    const same = parseCard({
      ...base,
      params: [{ key: 'lr', value: '0.1', previous: '0.1', changed: false }],
      metrics: [
        { key: 'val_loss', value: 0.2, previous: 0.2, best: 0.15, goal: 'min', steps: 10 },
        { key: 'acc', value: 0.9, previous: 0.9, best: 0.95, goal: 'max', steps: 1 }
      ]
    })!;
    const view = cardView(same);
    expect(view.metrics.every(m => m.vsPrevious === null)).toBe(true);
    expect(view.noChange).toBe(true);
    expect(cardView(parseCard(base)!).noChange).toBe(false);
    expect(cardView(parseCard({ ...same, previous_run_id: null })!).noChange).toBe(false);
  });
  it('does not repeat the change against the best when the previous run is the best', () => {
    const card = parseCard({
      ...base,
      metrics: [{ key: 'val_loss', value: 0.3, previous: 0.2, best: 0.2, goal: 'min', steps: 1 }]
    })!;
    const [loss] = cardView(card).metrics;
    expect(loss.vsPrevious!.direction).toBe('worse');
    expect(loss.vsBest).toBeNull();
  });
  it('flags a new best: the best of the experiment, reached by beating the previous run', () => {
    const card = parseCard({
      ...base,
      metrics: [
        { key: 'val_loss', value: 0.1, previous: 0.2, best: 0.1, goal: 'min', steps: 1 },
        { key: 'acc', value: 0.9, previous: 0.9, best: 0.9, goal: 'max', steps: 1 }
      ]
    })!;
    const view = cardView(card);
    expect(view.metrics.map(m => [m.key, m.isBest, m.newBest])).toEqual([
      ['val_loss', true, true],
      ['acc', true, false]
    ]);
    expect(view.newBest).toBe(true);
    expect(cardView(parseCard({ ...base, previous_run_id: null, best_run_id: 'abc123' })!).newBest).toBe(false);
  });
  it('carries the note', () => {
    expect(cardView(parseCard({ ...base, note: 'try a smaller lr' })!).note).toBe('try a smaller lr');
    expect(cardView(parseCard({ ...base, note: 42 })!).note).toBe('');
  });
});
