/**
 * Vitest's global setup: bring every package's `dist/` up to date (`tsc -b`,
 * incremental, about a second when nothing changed) before any suite runs, so
 * that the suites that spawn the compiled `headway` command never run an old
 * build. A failed build is handed to the suites instead of stopping the run:
 * only those that spawn `dist/` (see `requireFreshBuild`) fail on it.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Why `tsc -b` failed before the run, or null when every `dist/` is current. */
    buildProblem: string | null;
  }
}

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export default async function buildBeforeTests(project: TestProject): Promise<void> {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    await promisify(execFile)(process.execPath, [tsc, '-b'], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
    project.provide('buildProblem', null);
  } catch (err) {
    const { stdout } = err as { stdout?: string };
    project.provide('buildProblem', stdout?.trim() || String(err));
  }
}

/** Throw unless the global setup's `tsc -b` succeeded: for suites that run the compiled command. */
export function requireFreshBuild(): void {
  const problem = inject('buildProblem');
  if (problem === undefined) throw new Error('the build step did not run: start the suites with vitest');
  if (problem !== null) throw new Error(`tsc -b failed, so dist/ may be stale:\n${problem}`);
}
