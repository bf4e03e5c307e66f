import type { ProgressReport } from './job-handle.js';

export interface OutputParserOptions {
  /**
   * Extra progress patterns, tried before the built-in ones. Named groups
   * `percent`, `current`, `total`, `unit`, `message` and `stage` are used; a
   * pattern without named groups takes its first group as the percent.
   */
  progressPatterns?: RegExp[];
  /** Extra stage markers (a named group `stage`, or the first group, is the name). */
  stageMarkers?: RegExp[];
  /** Length of the media ffmpeg processes, seconds: turns its `out_time` into a percent. */
  duration?: number;
  /** Expected output size, bytes: turns ffmpeg's `total_size` into a count with a total. */
  totalSize?: number;
}

/** What one line of a command's output means. */
export type ParsedLine =
  | { type: 'progress'; report: ProgressReport; message?: string }
  | { type: 'stage'; name: string }
  | { type: 'log'; message: string }
  | { type: 'ignore' };

/** The built-in stage marker: a line `::stage <name>`. */
export const DEFAULT_STAGE_MARKER = /^::stage\s+(?<stage>\S.*?)\s*$/;

/** `45%`, `45.5 %`: a percent not glued to other digits. */
const PERCENT = /(?<![\d.])(\d{1,3}(?:\.\d+)?)\s?%/g;
/** `12/100`, `12 / 100`: a counter, not part of a path, date, version or fraction of words. */
const COUNTER = /(?<![\w./:-])(\d+)\s?\/\s?(\d+)(?![\w./:-]|\s?%)/g;
/** ffmpeg's `Duration: 00:01:23.45` header line (stderr). */
const FFMPEG_DURATION = /^\s*Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)/;
/** ffmpeg's classic stats line: `frame= 12 fps=… time=00:00:04.10 bitrate=…`. */
const FFMPEG_STATS_TIME = /\btime=\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)/;
/** A line of ffmpeg's `-progress` output (one `=`: the stats line has many). */
const KEY_VALUE = /^([a-z_0-9]+)=\s*([^=]*?)\s*$/;
/** Keys that identify ffmpeg `-progress` output (its lines are consumed, not logged). */
const FFMPEG_KEYS = new Set([
  'out_time_us',
  'out_time_ms',
  'out_time',
  'total_size',
  'progress',
  'frame',
  'speed',
]);
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with ESC.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(?:\x07|\x1b\\)/g;

function seconds(h: string, m: string, s: string): number {
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
}

function clampPercent(value: number): number {
  return Math.min(100, Math.max(0, value));
}

/**
 * Reads progress, stages and log lines from a command's output, one line at a
 * time: percentages (`45%`), counters (`12/100`), ffmpeg's `-progress`
 * key=value blocks and its stats line, custom patterns, and stage markers.
 */
export class OutputParser {
  private duration: number | undefined;
  private readonly totalSize: number | undefined;
  private readonly patterns: RegExp[];
  private readonly markers: RegExp[];
  /** The ffmpeg `-progress` block being read. */
  private block = new Map<string, string>();
  private ffmpegProgress = false;

  constructor(options: OutputParserOptions = {}) {
    this.duration = options.duration;
    this.totalSize = options.totalSize;
    this.patterns = options.progressPatterns ?? [];
    this.markers = [...(options.stageMarkers ?? []), DEFAULT_STAGE_MARKER];
  }

  /** The meaning of one line (without its line ending). */
  parse(raw: string): ParsedLine {
    const line = raw.replace(ANSI, '');
    const text = line.trim();
    if (text === '') return { type: 'ignore' };

    for (const marker of this.markers) {
      const m = marker.exec(text);
      if (m) {
        const name = (m.groups?.stage ?? m[1] ?? '').trim();
        if (name !== '') return { type: 'stage', name: name.slice(0, 128) };
      }
    }
    for (const pattern of this.patterns) {
      const parsed = this.custom(pattern, text);
      if (parsed) return parsed;
    }

    const kv = KEY_VALUE.exec(text);
    if (kv && (this.ffmpegProgress || FFMPEG_KEYS.has(kv[1]!))) return this.ffmpegLine(kv[1]!, kv[2]!);

    const duration = FFMPEG_DURATION.exec(text);
    if (duration && this.duration === undefined) {
      this.duration = seconds(duration[1]!, duration[2]!, duration[3]!);
      return { type: 'log', message: text };
    }
    const stats = FFMPEG_STATS_TIME.exec(text);
    if (stats && this.duration) {
      const done = seconds(stats[1]!, stats[2]!, stats[3]!);
      return { type: 'progress', report: { percent: clampPercent((done / this.duration) * 100) } };
    }

    const counter = lastMatch(COUNTER, text, (m) => {
      const current = Number(m[1]);
      const total = Number(m[2]);
      return total > 0 && current <= total ? { current, total } : null;
    });
    if (counter) return { type: 'progress', report: counter };
    const percent = lastMatch(PERCENT, text, (m) => {
      const value = Number(m[1]);
      return value <= 100 ? value : null;
    });
    if (percent !== null) return { type: 'progress', report: { percent } };
    return { type: 'log', message: text };
  }

  private custom(pattern: RegExp, text: string): ParsedLine | null {
    const m = pattern.exec(text);
    if (!m) return null;
    const g = m.groups;
    if (g?.stage) return { type: 'stage', name: g.stage.trim().slice(0, 128) };
    const num = (v: string | undefined) => {
      if (v === undefined) return undefined;
      const n = Number(v.replace(/,/g, ''));
      return Number.isFinite(n) && n >= 0 ? n : undefined;
    };
    const percent = num(g ? g.percent : m[1]);
    const current = num(g?.current);
    const total = num(g?.total);
    let report: ProgressReport | null = null;
    if (current !== undefined) {
      report = { current };
      if (total !== undefined && total >= current) report.total = total;
      if (g?.unit) report.unit = g.unit.slice(0, 32);
    } else if (percent !== undefined) {
      report = { percent: clampPercent(percent) };
    }
    if (!report) return null;
    const message = g?.message?.trim();
    return message ? { type: 'progress', report, message } : { type: 'progress', report };
  }

  /** One key=value line of ffmpeg's `-progress`; a `progress=` line ends a block. */
  private ffmpegLine(key: string, value: string): ParsedLine {
    this.ffmpegProgress = true;
    if (key !== 'progress') {
      this.block.set(key, value);
      return { type: 'ignore' };
    }
    const block = this.block;
    this.block = new Map();
    const end = value === 'end';
    if (this.duration) {
      if (end) return { type: 'progress', report: { percent: 100 } };
      const done = outTimeSeconds(block);
      if (done === undefined) return { type: 'ignore' };
      return { type: 'progress', report: { percent: clampPercent((done / this.duration) * 100) } };
    }
    const size = Number(block.get('total_size'));
    if (Number.isFinite(size) && size >= 0) {
      if (this.totalSize) {
        const total = this.totalSize;
        return {
          type: 'progress',
          report: end
            ? { current: total, total, unit: 'bytes' }
            : { current: Math.min(size, total), total, unit: 'bytes' },
        };
      }
      return { type: 'progress', report: { current: size, unit: 'bytes' } };
    }
    return { type: 'ignore' };
  }
}

/** Media time processed in an ffmpeg `-progress` block, seconds. */
function outTimeSeconds(block: Map<string, string>): number | undefined {
  // `out_time_ms` is in microseconds too, despite its name (an ffmpeg quirk).
  for (const key of ['out_time_us', 'out_time_ms']) {
    const us = Number(block.get(key));
    if (block.has(key) && Number.isFinite(us) && us >= 0) return us / 1e6;
  }
  const t = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(block.get('out_time') ?? '');
  return t ? seconds(t[1]!, t[2]!, t[3]!) : undefined;
}

function lastMatch<T>(re: RegExp, text: string, accept: (m: RegExpExecArray) => T | null): T | null {
  let found: T | null = null;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const value = accept(m);
    if (value !== null) found = value;
  }
  return found;
}
