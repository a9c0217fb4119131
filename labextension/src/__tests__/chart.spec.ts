import { extent, linearScale, linePath, niceTicks, thin } from '../chart';

describe('chart geometry', () => {
  it('finds the extent of finite values and widens flat ones', () => {
    expect(extent([3, null, 1, NaN, 2])).toEqual({ min: 1, max: 3 });
    expect(extent([])).toEqual({ min: 0, max: 1 });
    expect(extent([2, 2])).toEqual({ min: 1.9, max: 2.1 });
    expect(extent([0])).toEqual({ min: -1, max: 1 });
  });
  it('maps linearly', () => {
    const s = linearScale({ min: 0, max: 10 }, 0, 100);
    expect(s(5)).toBe(50);
    const flipped = linearScale({ min: 0, max: 1 }, 100, 0);
    expect(flipped(1)).toBe(0);
  });
  it('makes round ticks inside the domain', () => {
    expect(niceTicks({ min: 0, max: 1 }, 4)).toEqual([0, 0.5, 1]);
    expect(niceTicks({ min: 0.13, max: 0.92 }, 4)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks({ min: 5, max: 5 })).toEqual([5]);
  });
  it('draws a path with breaks at missing values', () => {
    const points = [
      { x: 0, y: 1 },
      { x: 1, y: 0 },
      { x: 2, y: null },
      { x: 3, y: 1 }
    ];
    expect(linePath(points, { min: 0, max: 3 }, { min: 0, max: 1 }, 30, 10)).toBe('M0.0 0.0 L10.0 10.0 M30.0 0.0');
  });
  it('thins long series keeping both ends', () => {
    const points = Array.from({ length: 1000 }, (_, i) => i);
    const kept = thin(points, 10);
    expect(kept).toHaveLength(10);
    expect(kept[0]).toBe(0);
    expect(kept[9]).toBe(999);
    expect(thin([1, 2, 3], 10)).toEqual([1, 2, 3]);
  });
});
