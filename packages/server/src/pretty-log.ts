/**
 * pino's records as lines a person reads on a terminal (`headway start
 * --log-format pretty`): `12:03:07 INFO  listening url=http://…`. Records
 * are held back until `release()`, so that the start-up banner is written
 * whole and the log lines follow it, never interleaved.
 */

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const COLORS: Record<number, string> = { 40: '33', 50: '31', 60: '31' };
/** Fields every record has, left out of the line. */
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

export interface PrettyLogOptions {
  out: { write(chunk: string): unknown };
  color: boolean;
}

export class PrettyLog {
  private held: string[] | null = [];

  constructor(private readonly options: PrettyLogOptions) {}

  /** pino's destination interface: one JSON record per call. */
  write(record: string): void {
    const line = this.format(record);
    if (this.held) this.held.push(line);
    else this.options.out.write(line);
  }

  /** Write what was held, and everything after it at once. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const line of held) this.options.out.write(line);
  }

  private format(record: string): string {
    let fields: Record<string, unknown>;
    try {
      fields = JSON.parse(record) as Record<string, unknown>;
    } catch {
      return record.endsWith('\n') ? record : `${record}\n`;
    }
    const level = typeof fields.level === 'number' ? fields.level : 30;
    const time = new Date(typeof fields.time === 'number' ? fields.time : Date.now());
    const clock = time.toTimeString().slice(0, 8);
    const paint = (code: string | undefined, text: string) =>
      this.options.color && code ? `\x1b[${code}m${text}\x1b[0m` : text;
    const extra = Object.entries(fields)
      .filter(([key]) => !OMITTED.has(key))
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    const message = [String(fields.msg ?? ''), ...extra].filter(Boolean).join(' ');
    return `${clock} ${paint(COLORS[level], LEVELS[level] ?? String(level))} ${message}\n`;
  }
}
