/**
 * A small live line chart (SVG, no library). Its accessible name states what
 * it shows in words: the latest value and the peak over the window.
 */

export interface SparklineProps {
  values: readonly number[];
  /** Slots in the window: values fill it from the right. */
  capacity: number;
  label: string;
  /** How to write a value in the accessible name. */
  format: (value: number) => string;
  height?: number;
}

const WIDTH = 300;

export function Sparkline({ values, capacity, label, format, height = 64 }: SparklineProps) {
  const peak = Math.max(1, ...values);
  const step = WIDTH / Math.max(1, capacity - 1);
  const offset = capacity - values.length;
  const points = values.map((v, i) => {
    const x = (offset + i) * step;
    const y = height - 2 - (v / peak) * (height - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const latest = values.at(-1);
  const name =
    latest === undefined
      ? `${label}: no data yet`
      : `${label}: ${format(latest)} now, peak ${format(Math.max(...values))}`;
  return (
    <svg
      className="sparkline"
      viewBox={`0 0 ${WIDTH} ${height}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={name}
      data-count={values.length}
    >
      <line x1="0" y1={height - 1} x2={WIDTH} y2={height - 1} className="sparkline__axis" />
      {points.length > 1 && (
        <>
          <polygon
            className="sparkline__area"
            points={`${points[0]!.split(',')[0]},${height} ${points.join(' ')} ${points.at(-1)!.split(',')[0]},${height}`}
          />
          <polyline className="sparkline__line" points={points.join(' ')} />
        </>
      )}
    </svg>
  );
}
