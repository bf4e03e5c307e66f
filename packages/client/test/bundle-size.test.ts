/**
 * The client's budget: at most 8 KB minified and gzipped, with no runtime
 * dependency besides the protocol's dependency-free codes module.
 */
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { rolldown } from 'rolldown';
import { expect, it } from 'vitest';

const LIMIT_BYTES = 8 * 1024;
const path = (p: string) => fileURLToPath(new URL(p, import.meta.url));

it('bundles to at most 8 KB min+gzip, with only the protocol codes inlined', async () => {
  const bundle = await rolldown({
    input: path('../src/index.ts'),
    resolve: { alias: { '@headway/protocol/codes': path('../../protocol/src/codes.ts') } },
    logLevel: 'silent',
  });
  try {
    const { output } = await bundle.generate({ format: 'esm', minify: true });
    const chunk = output[0];
    const modules = chunk.moduleIds.map((id) => id.replace(/\\/g, '/'));
    const foreign = modules.filter(
      (id) => !id.includes('/packages/client/src/') && !id.endsWith('/protocol/src/codes.ts'),
    );
    expect(foreign).toEqual([]);
    expect(chunk.imports).toEqual([]);
    const gzipped = gzipSync(chunk.code, { level: 9 }).length;
    expect(gzipped).toBeLessThanOrEqual(LIMIT_BYTES);
  } finally {
    await bundle.close();
  }
});
