import { describe, expect, it } from 'vitest';
import { OutputParser } from '../src/output-parser.js';

describe('OutputParser', () => {
  it('reads percentages, the last one on a line', () => {
    const p = new OutputParser();
    expect(p.parse('Downloading 45%')).toEqual({ type: 'progress', report: { percent: 45 } });
    expect(p.parse('[#####     ] 12.5 % done')).toEqual({ type: 'progress', report: { percent: 12.5 } });
    expect(p.parse('step 1: 10% ... 20%')).toEqual({ type: 'progress', report: { percent: 20 } });
    expect(p.parse('\x1b[32m 99%\x1b[0m')).toEqual({ type: 'progress', report: { percent: 99 } });
    expect(p.parse('growth of 250% this year').type).toBe('log');
  });

  it('reads counters, but not dates, paths, versions or ratios over their total', () => {
    const p = new OutputParser();
    expect(p.parse('Processing video 12/100')).toEqual({
      type: 'progress',
      report: { current: 12, total: 100 },
    });
    expect(p.parse('[3 / 7] compiling')).toEqual({ type: 'progress', report: { current: 3, total: 7 } });
    for (const line of ['2024/01/05 started', 'GET /api/1/2 HTTP/1.1', 'ratio 7/3', 'see docs/2/3']) {
      expect(p.parse(line).type).toBe('log');
    }
  });

  it('reads stage markers, built-in and custom', () => {
    const p = new OutputParser({ stageMarkers: [/^==> (.+)$/, /^PHASE (?<stage>\w+)/] });
    expect(p.parse('::stage download')).toEqual({ type: 'stage', name: 'download' });
    expect(p.parse('==> transcode')).toEqual({ type: 'stage', name: 'transcode' });
    expect(p.parse('PHASE upload now')).toEqual({ type: 'stage', name: 'upload' });
  });

  it('reads custom progress patterns before the built-in ones', () => {
    const p = new OutputParser({
      progressPatterns: [
        /^frames (?<current>[\d,]+) of (?<total>[\d,]+) \((?<message>.+)\)$/,
        /^at ([\d.]+) percent/,
      ],
    });
    expect(p.parse('frames 1,200 of 2,400 (pass 1)')).toEqual({
      type: 'progress',
      report: { current: 1200, total: 2400 },
      message: 'pass 1',
    });
    expect(p.parse('at 33.3 percent')).toEqual({ type: 'progress', report: { percent: 33.3 } });
  });

  it('reads ffmpeg -progress blocks against a duration', () => {
    const p = new OutputParser({ duration: 10 });
    const block = (us: number, end = false) =>
      [
        `frame=${us / 1000}`,
        'fps=25.0',
        `out_time_us=${us}`,
        `out_time_ms=${us}`,
        'speed=2x',
        `progress=${end ? 'end' : 'continue'}`,
      ].map((l) => p.parse(l));
    const first = block(2_500_000);
    expect(first.slice(0, -1).every((r) => r.type === 'ignore')).toBe(true);
    expect(first.at(-1)).toEqual({ type: 'progress', report: { percent: 25 } });
    expect(block(10_000_000, true).at(-1)).toEqual({ type: 'progress', report: { percent: 100 } });
    // Once in -progress mode, other key=value lines are consumed too.
    expect(p.parse('bitrate= 512.0kbits/s')).toEqual({ type: 'ignore' });
  });

  it('takes the duration from ffmpeg’s header, and reads its stats line', () => {
    const p = new OutputParser();
    expect(p.parse('  Duration: 00:01:40.00, start: 0.000000, bitrate: 1205 kb/s').type).toBe('log');
    expect(
      p.parse('frame=  250 fps= 50 q=28.0 size=    1024kB time=00:00:25.00 bitrate= 335.5kbits/s'),
    ).toEqual({
      type: 'progress',
      report: { percent: 25 },
    });
    expect(p.parse('out_time=00:00:50.000000')).toEqual({ type: 'ignore' });
    expect(p.parse('progress=continue')).toEqual({ type: 'progress', report: { percent: 50 } });
  });

  it('reads ffmpeg total_size as bytes, with a total when one is given', () => {
    const sized = new OutputParser({ totalSize: 1000 });
    sized.parse('total_size=250');
    expect(sized.parse('progress=continue')).toEqual({
      type: 'progress',
      report: { current: 250, total: 1000, unit: 'bytes' },
    });
    const unsized = new OutputParser();
    unsized.parse('total_size=4096');
    expect(unsized.parse('progress=continue')).toEqual({
      type: 'progress',
      report: { current: 4096, unit: 'bytes' },
    });
  });

  it('leaves other lines as logs and ignores blank ones', () => {
    const p = new OutputParser();
    expect(p.parse('  connecting to origin  ')).toEqual({ type: 'log', message: 'connecting to origin' });
    expect(p.parse('   ')).toEqual({ type: 'ignore' });
  });
});
