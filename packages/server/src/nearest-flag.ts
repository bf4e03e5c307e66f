/**
 * The suggestion after a mistyped flag, shared by every `headway` command:
 * `unknown option --ulr (did you mean --url?)`.
 */

/** The known flag nearest to an unknown one, when it is near enough to be a typo. */
export function nearestFlag(flag: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = editDistance(flag, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  // A third of the flag's letters may differ: "--ulr" is --url, "--colour" is nothing we know.
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(flag.length / 3)) ? best : undefined;
}

/** `unknown option --ulr (did you mean --url?)`. */
export function unknownOption(flag: string, known: Iterable<string>): string {
  const near = nearestFlag(flag, known);
  return near ? `unknown option ${flag} (did you mean ${near}?)` : `unknown option ${flag}`;
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours (`--ulr` → `--url` is 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}
