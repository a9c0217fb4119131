import { hasTrackMagic, toggleTrackMagic, trackRunName } from '../magic';

describe('toggleTrackMagic', () => {
  it('adds %%track as the first line', () => {
    expect(toggleTrackMagic('lr = 0.1\nfit(lr)')).toBe('%%track\nlr = 0.1\nfit(lr)');
    expect(toggleTrackMagic('')).toBe('%%track\n');
  });
  it('removes %%track with its options and keeps the rest byte for byte', () => {
    expect(toggleTrackMagic('%%track baseline -e iris --note "first try"\nlr = 0.1\n  x')).toBe('lr = 0.1\n  x');
    expect(toggleTrackMagic('%%track')).toBe('');
  });
  it('is its own inverse on a plain cell', () => {
    const source = 'import numpy as np\n\nfor i in range(3):\n    print(i)\n';
    expect(toggleTrackMagic(toggleTrackMagic(source))).toBe(source);
  });
  it('does not mistake other magics or comments for %%track', () => {
    expect(hasTrackMagic('%%time\nx = 1')).toBe(false);
    expect(hasTrackMagic('%%tracking_ui')).toBe(false);
    expect(hasTrackMagic('# %%track\nx = 1')).toBe(false);
    expect(hasTrackMagic('x = 1\n%%track')).toBe(false);
    expect(toggleTrackMagic('%%time\nx = 1')).toBe('%%track\n%%time\nx = 1');
  });
  it('sees %%track after a leading blank line', () => {
    expect(hasTrackMagic('\n%%track\nx = 1')).toBe(true);
    expect(toggleTrackMagic('\n%%track\nx = 1')).toBe('x = 1');
  });
});

describe('trackRunName', () => {
  it('finds the run name among options', () => {
    expect(trackRunName('%%track baseline\nx')).toBe('baseline');
    expect(trackRunName('%%track -e iris --note "why not" big-model -t a=b\nx')).toBe('big-model');
    expect(trackRunName("%%track --no-live 'quoted name'\nx")).toBe('quoted name');
  });
  it('skips the values of the sweep options', () => {
    expect(trackRunName('%%track tuned --jobs 2 --grid grid\nx')).toBe('tuned');
    expect(trackRunName('%%track --jobs 2 --grid grid\nx')).toBeNull();
    expect(trackRunName('%%track --cluster tcp://h:8786 --search space --trials 12 --seed 1 search\nx')).toBe('search');
    expect(trackRunName('%%track --grid {"lr": [0.1, 0.2], "d": [1, 2]} --best-by val_loss:min\nx')).toBeNull();
    expect(trackRunName('%%track --steps 10 --jobs -1 fit\nx')).toBe('fit');
  });
  it('is null without a name or without %%track', () => {
    expect(trackRunName('%%track -e iris\nx')).toBeNull();
    expect(trackRunName('%%track\nx')).toBeNull();
    expect(trackRunName('x = 1')).toBeNull();
  });
});
