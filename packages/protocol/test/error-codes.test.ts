/**
 * docs/errors.md is the one table of every error code a user can meet, in any
 * package. Checked both ways, as Fastify checks its errors: every code a package
 * exports is in the table, under that package; every code in the table (or named
 * anywhere in the docs) is exported by a package; a retired code stays retired.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ClientErrorCode } from '@headway/client';
import { ReactErrorCode } from '@headway/react';
import { ServerErrorCode } from '@headway/server';
import { WorkerErrorCode } from '@headway/worker';
import { describe, expect, it } from 'vitest';
import { ErrorCode, httpStatus } from '../src/codes.js';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

/** The codes each package exports, by the name the table gives the package. */
const exported: Record<string, readonly string[]> = {
  '@headway/protocol': Object.values(ErrorCode),
  '@headway/client': Object.values(ClientErrorCode),
  '@headway/react': Object.values(ReactErrorCode),
  '@headway/worker': Object.values(WorkerErrorCode),
  '@headway/server': Object.values(ServerErrorCode),
};

/** The codes the Python client raises itself or acts on, as string literals in its source. */
/** Every `HW_*` string of the Python package's modules. */
const python = new Set(
  readdirSync(new URL('../../../clients/python/headway/', import.meta.url))
    .filter((name) => name.endsWith('.py'))
    .flatMap((name) => read(`clients/python/headway/${name}`).match(/(?<=")HW_[A-Z_]*[A-Z](?=")/g) ?? []),
);

interface Row {
  code: string;
  packages: string[];
  http: string;
}

/** The rows of the table that follows `heading` in docs/errors.md. */
function table(doc: string, heading: string): Row[] {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const rows: Row[] = [];
  for (const line of doc.slice(start + heading.length + 2).split('\n')) {
    if (line.startsWith('## ')) break;
    const cells = line.split('|').map((c) => c.trim());
    const code = /^`(HW_[A-Z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (code === undefined) continue;
    const packages = [...(cells[2] ?? '').matchAll(/`(@headway\/[a-z]+)`|\b(Python)\b/g)].map(
      (m) => m[1] ?? m[2],
    );
    rows.push({ code, packages, http: cells[3] ?? '' });
  }
  return rows;
}

// A newline first, so that the page's title is found like any other heading.
const doc = `\n${read('docs/errors.md')}`;
const rows = table(doc, '# Error codes');
const retired = table(doc, '## Retired codes');
const byCode = new Map(rows.map((r) => [r.code, r]));

describe('docs/errors.md', () => {
  it('lists every code once', () => {
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => r.code)).size, 'a code listed twice').toBe(rows.length);
  });

  it('lists every code each package exports, under that package', () => {
    for (const [pkg, codes] of Object.entries(exported)) {
      for (const code of codes) expect(byCode.get(code)?.packages ?? [], `${code} of ${pkg}`).toContain(pkg);
    }
  });

  it('lists only codes that a package exports', () => {
    for (const row of rows) {
      expect(row.packages.length, `${row.code} names no package`).toBeGreaterThan(0);
      for (const pkg of row.packages) {
        if (pkg === 'Python') expect(python, `${row.code} of the Python client`).toContain(row.code);
        else expect(exported[pkg], `${row.code} of ${pkg}`).toContain(row.code);
      }
    }
  });

  it('lists every code the Python client uses', () => {
    expect(python.size).toBeGreaterThan(0);
    for (const code of python) expect(byCode.has(code), code).toBe(true);
    // Its own codes are the Node worker's, so one row serves both.
    for (const row of rows.filter((r) => r.packages.includes('Python'))) {
      expect(row.packages).toContain('@headway/worker');
    }
  });

  it("gives each hub code its REST answer's HTTP status", () => {
    for (const code of Object.values(ErrorCode))
      expect(byCode.get(code)?.http, code).toBe(String(httpStatus[code]));
    for (const row of rows.filter((r) => !r.packages.includes('@headway/protocol'))) {
      expect(row.http, row.code).toBe('—');
    }
  });

  it('never reuses a retired code', () => {
    const live = new Set(Object.values(exported).flat());
    for (const { code } of retired) {
      expect(live.has(code), `${code} is retired`).toBe(false);
      expect(python.has(code), `${code} is retired`).toBe(false);
    }
  });

  it('names no code elsewhere in the docs that no package has', () => {
    const known = new Set([...Object.values(exported).flat(), ...python]);
    const files = readdirSync(new URL('../../../docs/', import.meta.url))
      .filter((f) => f.endsWith('.md') && f !== 'errors.md')
      .map((f) => `docs/${f}`);
    for (const file of [...files, 'README.md', 'clients/python/README.md']) {
      for (const code of read(file).match(/\bHW_[A-Z]+(?:_[A-Z]+)+\b/g) ?? []) {
        expect(known.has(code), `${code} in ${file}`).toBe(true);
      }
    }
  });
});
