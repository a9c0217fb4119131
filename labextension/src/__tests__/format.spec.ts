import { formatDuration, formatNumber, formatTick, formatTime, isSafeUrl, metricDelta, runDuration, runStatusText } from '../format';

describe('formatNumber', () => {
  it('keeps whole numbers whole and shows others in 4 significant digits, zeros kept', () => {
    expect(formatNumber(42)).toBe('42');
    expect(formatNumber(0.123456)).toBe('0.1235');
    expect(formatNumber(0.962)).toBe('0.9620');
    expect(formatNumber(0.9601)).toBe('0.9601');
    expect(formatNumber(0.5)).toBe('0.5000');
    expect(formatNumber(12.5)).toBe('12.50');
    expect(formatNumber(-3.14159)).toBe('-3.142');
    expect(formatNumber(-3.14159, 3)).toBe('-3.14');
  });
  it('uses fixed notation where it reads (small values down to 1e-4)', () => {
    expect(formatNumber(-9.68e-4)).toBe('-0.0009680');
    expect(formatNumber(0.00012346)).toBe('0.0001235');
    expect(formatNumber(9.99996)).toBe('10.00');
    expect(formatNumber(-99.99996)).toBe('-100.0');
    expect(formatNumber(1234.5678)).toBe('1235');
    expect(formatNumber(12345.6)).toBe('12346');
  });
  it('uses exponents only for tiny and huge values', () => {
    expect(formatNumber(0.0000123)).toBe('1.230e-5');
    expect(formatNumber(12345678.9)).toBe('1.235e7');
    expect(formatNumber(2e7)).toBe('2.000e7');
  });
  it('shows unknown and infinite values as symbols', () => {
    expect(formatNumber(null)).toBe('—');
    expect(formatNumber(NaN)).toBe('—');
    expect(formatNumber(Infinity)).toBe('∞');
    expect(formatNumber(-Infinity)).toBe('-∞');
  });
});

describe('formatTick', () => {
  it('drops trailing zeros from round axis values', () => {
    expect(formatTick(0.5)).toBe('0.5');
    expect(formatTick(0.25)).toBe('0.25');
    expect(formatTick(10)).toBe('10');
    expect(formatTick(0.00002)).toBe('2e-5');
    expect(formatTick(2e7)).toBe('2e7');
  });
});

describe('formatDuration', () => {
  it('picks a unit that reads well', () => {
    expect(formatDuration(0.25)).toBe('250 ms');
    expect(formatDuration(3.21)).toBe('3.2 s');
    expect(formatDuration(42.4)).toBe('42 s');
    expect(formatDuration(65)).toBe('1 min 05 s');
    expect(formatDuration(7380)).toBe('2 h 03 min');
  });
  it('says nothing for unknown or negative durations', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(-1)).toBe('—');
  });
  it('measures a running run up to now', () => {
    expect(runDuration(1000, null, 4000)).toBe(3);
    expect(runDuration(1000, 2500, 9999)).toBe(1.5);
    expect(runDuration(null, 2500)).toBeNull();
  });
});

describe('formatTime', () => {
  it('formats local date and minutes', () => {
    const ms = new Date(2026, 10, 22, 5, 7).getTime();
    expect(formatTime(ms)).toBe('2026-11-22 05:07');
    expect(formatTime(null)).toBe('—');
  });
});

describe('metricDelta', () => {
  it('calls a lower loss better and a lower accuracy worse', () => {
    expect(metricDelta(0.2, 0.25, 'min')).toEqual({ text: '-0.05000 (-20%)', direction: 'better' });
    expect(metricDelta(0.8, 0.9, 'max')).toEqual({ text: '-0.1000 (-11%)', direction: 'worse' });
    expect(metricDelta(0.95, 0.9, 'max')!.direction).toBe('better');
  });
  it('says when nothing changed and when it cannot compare', () => {
    expect(metricDelta(1, 1, 'min')).toEqual({ text: 'no change', direction: 'same' });
    // A change below the shown precision is no change either (no "+0.000").
    expect(metricDelta(0.96011, 0.96012, 'max')).toEqual({ text: 'no change', direction: 'same' });
    expect(metricDelta(1, null, 'min')).toBeNull();
    expect(metricDelta(null, 1, 'min')).toBeNull();
    expect(metricDelta(NaN, 1, 'min')).toBeNull();
  });
  it('calls a change neither better nor worse when the goal is unknown', () => {
    expect(metricDelta(0.95, 0.9, null)).toEqual({ text: '+0.05000 (+5.6%)', direction: 'changed' });
    expect(metricDelta(0.85, 0.9, null)!.direction).toBe('changed');
    expect(metricDelta(0.9, 0.9, null)).toEqual({ text: 'no change', direction: 'same' });
  });
  it('leaves out a percentage against zero', () => {
    expect(metricDelta(0.5, 0, 'max')).toEqual({ text: '+0.5000', direction: 'better' });
  });
});

describe('isSafeUrl', () => {
  it('accepts http(s) and same-origin paths only', () => {
    expect(isSafeUrl('http://127.0.0.1:5000/#/experiments/1')).toBe(true);
    expect(isSafeUrl('https://example.org/x')).toBe(true);
    expect(isSafeUrl('/lab/tree')).toBe(true);
    expect(isSafeUrl('javascript:alert(1)')).toBe(false);
    expect(isSafeUrl('//evil.example/x')).toBe(false);
    expect(isSafeUrl('data:text/html,<b>')).toBe(false);
    expect(isSafeUrl(null)).toBe(false);
  });
});

describe('runStatusText', () => {
  it('reads lower case and marks stale running runs', () => {
    expect(runStatusText({ status: 'FINISHED' })).toBe('finished');
    expect(runStatusText({ status: 'RUNNING', stale: false })).toBe('running');
    expect(runStatusText({ status: 'RUNNING', stale: true })).toBe('running (stale)');
    expect(runStatusText({ status: 'KILLED', stale: true })).toBe('killed');
  });
});
