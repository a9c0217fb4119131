/**
 * Adding and removing `%%track` on a cell's source. Pure string functions (unit-tested).
 */

const TRACK_LINE = /^%%track(?:\s|$)/;

/** True when the cell's first line is a `%%track` cell magic. */
export function hasTrackMagic(source: string): boolean {
  return TRACK_LINE.test(source.replace(/^\s*\n/, ''));
}

/**
 * The source with `%%track` removed from its first line if it had it, else added as the first line.
 * Removing keeps the rest of the cell byte for byte; options on the `%%track` line go with it.
 */
export function toggleTrackMagic(source: string): string {
  if (hasTrackMagic(source)) {
    const withoutBlank = source.replace(/^\s*\n/, '');
    const newline = withoutBlank.indexOf('\n');
    return newline === -1 ? '' : withoutBlank.slice(newline + 1);
  }
  return source.length ? `%%track\n${source}` : '%%track\n';
}

/** The run name given on a `%%track NAME ...` line (the first word that is not an option), if any. */
export function trackRunName(source: string): string | null {
  if (!hasTrackMagic(source)) {
    return null;
  }
  const first = source.replace(/^\s*\n/, '').split('\n', 1)[0];
  const words = (first.match(/"[^"]*"|'[^']*'|\S+/g) || []).slice(1);
  // The %%track options that take a value (tests/test_track.py checks this list against the magic's parser);
  // --grid and --search take every word up to the next option.
  const takesValue = new Set([
    '-e', '--experiment', '-p', '--params', '-m', '--metrics', '-x', '--exclude', '-t', '--tag',
    '--note', '--artifacts', '--steps', '--best-by', '--trials', '--seed', '--jobs', '--cluster'
  ]); // prettier-ignore
  const takesWords = new Set(['--grid', '--search']);
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (takesValue.has(word)) {
      i++;
      continue;
    }
    if (takesWords.has(word)) {
      while (i + 1 < words.length && !/^-[-a-zA-Z]/.test(words[i + 1])) {
        i++;
      }
      continue;
    }
    if (word.startsWith('-')) {
      continue;
    }
    return word.replace(/^(["'])(.*)\1$/, '$2');
  }
  return null;
}
