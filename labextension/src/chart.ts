/**
 * Geometry of the small line charts (scales, ticks, SVG paths). Pure (unit-tested); chartView.ts draws.
 */

export interface IPoint {
  x: number;
  y: number | null;
}

export interface ISeries {
  label: string;
  points: IPoint[];
}

export interface IExtent {
  min: number;
  max: number;
}

/** Min and max of the finite values; a flat or empty range is widened so a scale can be drawn. */
export function extent(values: (number | null)[]): IExtent {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v !== null && Number.isFinite(v)) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  if (min === Infinity) {
    return { min: 0, max: 1 };
  }
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.05;
    return { min: min - pad, max: max + pad };
  }
  return { min, max };
}

/** A linear map from `domain` onto `[r0, r1]`. */
export function linearScale(domain: IExtent, r0: number, r1: number): (v: number) => number {
  const span = domain.max - domain.min || 1;
  return (v: number) => r0 + ((v - domain.min) / span) * (r1 - r0);
}

/** About `count` round tick values covering `domain` (1, 2, 5 times a power of ten apart). */
export function niceTicks(domain: IExtent, count = 4): number[] {
  const span = domain.max - domain.min;
  if (!(span > 0) || !Number.isFinite(span)) {
    return [domain.min];
  }
  const raw = span / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw) || raw;
  const first = Math.ceil(domain.min / step) * step;
  const ticks: number[] = [];
  for (let v = first; v <= domain.max + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

/**
 * The SVG path ("M x y L x y ...") of `points` in a `width` x `height` box with the given domains.
 * Missing values break the line into segments.
 */
export function linePath(points: IPoint[], xDomain: IExtent, yDomain: IExtent, width: number, height: number): string {
  const sx = linearScale(xDomain, 0, width);
  const sy = linearScale(yDomain, height, 0);
  let path = '';
  let pen = false;
  for (const p of points) {
    if (p.y === null || !Number.isFinite(p.y)) {
      pen = false;
      continue;
    }
    path += `${pen ? 'L' : 'M'}${sx(p.x).toFixed(1)} ${sy(p.y).toFixed(1)} `;
    pen = true;
  }
  return path.trim();
}

/** At most `max` points, evenly spread, first and last kept (a long series stays fast to draw). */
export function thin<T>(points: T[], max: number): T[] {
  if (max < 2 || points.length <= max) {
    return points;
  }
  const last = points.length - 1;
  const out: T[] = [];
  let previous = -1;
  for (let i = 0; i < max; i++) {
    const index = Math.round((i * last) / (max - 1));
    if (index !== previous) {
      out.push(points[index]);
      previous = index;
    }
  }
  return out;
}
