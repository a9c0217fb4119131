import { runCountText } from '../format';

describe('runCountText', () => {
  it('shows the total the store counted', () => {
    expect(runCountText(50, 12345, true)).toBe('50 of 12,345 runs');
    expect(runCountText(3, 3, false)).toBe('3 runs');
    expect(runCountText(1, 1, false)).toBe('1 run');
    expect(runCountText(0, 0, false)).toBe('0 runs');
  });
  it('says when a tracking server did not count', () => {
    expect(runCountText(50, null, true)).toBe('50 runs shown, more to load');
    expect(runCountText(7, undefined, false)).toBe('7 runs');
  });
});
