#!/usr/bin/env node
// The `headway` command. The code lives in ../dist (compiled from ../src/cli.ts).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('headway: not built yet; run `npm run build` (tsc -b) in the repository first\n');
  process.exitCode = 1;
} else {
  const { main } = await import(cli.href);
  // exitCode rather than process.exit(): output still buffered in a pipe is written before the process ends.
  process.exitCode = await main(process.argv.slice(2), process.env);
}
