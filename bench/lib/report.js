/** Markdown table of result rows: `{ metric, goal, result, pass }` with pass true, false or null (no goal). */
export function renderTable(rows) {
  const lines = ['| Metric | Goal | Result | Pass |', '| --- | --- | --- | --- |'];
  for (const r of rows) {
    const verdict = r.pass === null ? '—' : r.pass ? 'pass' : '**FAIL**';
    lines.push(`| ${r.metric} | ${r.goal} | ${r.result} | ${verdict} |`);
  }
  return lines.join('\n');
}

const escapeXml = (s) => String(s).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A horizontal bar chart as a standalone SVG string: one bar per `{ label, value }`,
 * scaled to the largest, with the value printed after the bar.
 */
export function renderBarChart({ title, unit, bars }) {
  const width = 560;
  const labelWidth = 150;
  const barArea = width - labelWidth - 110;
  const barHeight = 28;
  const gap = 14;
  const top = 44;
  const height = top + bars.length * (barHeight + gap) + 10;
  const max = Math.max(...bars.map((b) => b.value), Number.EPSILON);
  const palette = ['#2563eb', '#9ca3af', '#16a34a', '#d97706'];
  const rows = bars.map((b, i) => {
    const y = top + i * (barHeight + gap);
    const w = Math.max(1, (b.value / max) * barArea);
    return [
      `<text x="${labelWidth - 10}" y="${y + barHeight / 2 + 5}" text-anchor="end">${escapeXml(b.label)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" rx="3" fill="${palette[i % palette.length]}"/>`,
      `<text x="${(labelWidth + w + 8).toFixed(1)}" y="${y + barHeight / 2 + 5}">${escapeXml(`${b.value.toFixed(2)} ${unit}`)}</text>`,
    ].join('\n  ');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="14" fill="#111827">`,
    `  <title>${escapeXml(title)}</title>`,
    `  <rect width="100%" height="100%" fill="#ffffff"/>`,
    `  <text x="12" y="24" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    `  ${rows.join('\n  ')}`,
    '</svg>',
    '',
  ].join('\n');
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2, minimumFractionDigits: 2 });
export const fmt = {
  int: (n) => integer.format(n),
  dec: (n) => decimal.format(n),
  kib: (bytes) => `${decimal.format(bytes / 1024)} KiB`,
  mib: (bytes) => `${decimal.format(bytes / 1024 / 1024)} MiB`,
};

/** p50, p99 and max of a list of numbers, and how many there were. */
export function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { samples: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}
