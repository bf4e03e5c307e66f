/**
 * `headway run`: run any command as a Headway job. The work happens in
 * `runCommand` of @headway/worker; this file turns the command line into its
 * options.
 */
import type { StageInput } from '@headway/protocol';
import { type RunCommandOptions, runCommand, runDefaults } from '@headway/worker';
import { unknownOption } from '../nearest-flag.js';
import {
  CONNECTION_HELP,
  type ConnectionFlags,
  checkHub,
  credentialRefused,
  DEFAULT_HUB_URL,
  findCredential,
  hubUrl,
  missingCredential,
} from './hub-connection.js';

/** Exit code of a usage or configuration error (as for `headway start`). */
const EXIT_USAGE = 2;

export const RUN_HELP = `Usage: headway run [options] -- <command> [args…]

Runs a command as a Headway job: its output is shown as usual and read for
progress (45%, 12/100, ffmpeg -progress lines), stages and log lines; exit code
0 completes the job, any other fails it with the tail of stderr. Cancel in the
UI sends SIGTERM (then SIGKILL after the grace period); pause stops the command
until it is resumed. The command runs in its own process group with stdin closed.

Options:
  --owner <user>             owner of the job to create (required without --job)
  --name <name>              name of the job (default: the command line)
  --job <id>                 the job's id: with --owner, create it under this id (or
                             report for it if it exists); without, it must exist
  --stage <name[:weight]>    a stage of the plan, in order (repeatable)
  --stage-marker <regex>     a line marking a stage: named group "stage" or the first group
                             (repeatable; "::stage <name>" lines always do)
  --progress-pattern <regex> a progress line: named groups percent, current, total, unit,
                             message, or the first group as the percent (repeatable)
  --duration <seconds>       media length, for ffmpeg progress (default: its Duration: line)
  --total-size <bytes>       expected output size, for ffmpeg's total_size
  --log-rate <lines>         log events per second at most, 0 for none (default ${runDefaults.logRate})
  --grace <seconds>          time between SIGTERM and SIGKILL on cancel (default ${runDefaults.graceMs / 1000})

${CONNECTION_HELP}

Before the command's output, the job's id and the "headway watch" command that
follows it are written to stderr.

The exit code is the command's (128 + n when signal n ended it, 127 when it
could not start), 1 when the hub cannot be reached or refuses the API key
(nothing is run then), or 2 for a usage error.
`;

class UsageError extends Error {}

const VALUE_FLAGS = new Set([
  '--owner',
  '--name',
  '--job',
  '--stage',
  '--stage-marker',
  '--progress-pattern',
  '--duration',
  '--total-size',
  '--log-rate',
  '--grace',
  '--url',
  '--api-key',
  '--data-dir',
]);
const ALL_FLAGS = [...VALUE_FLAGS, '--help'];

/** What `parseRunArgs` makes of the command line: the command's options and where the hub is. */
export interface RunArgs extends RunCommandOptions {
  connection: ConnectionFlags;
}

export interface RunIo {
  stdout: NodeJS.WritableStream & { write(chunk: string): boolean };
  stderr: NodeJS.WritableStream & { write(chunk: string): boolean };
}

/** Parse `headway run` arguments into `runCommand` options (without the worker). */
export function parseRunArgs(argv: string[]): RunArgs | 'help' {
  const options: RunArgs = { command: '', connection: {} };
  const stages: StageInput[] = [];
  const markers: RegExp[] = [];
  const patterns: RegExp[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '-h' || arg === '--help') return 'help';
    if (!arg.startsWith('-')) break; // the command starts here
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (!VALUE_FLAGS.has(flag)) throw new UsageError(unknownOption(flag, ALL_FLAGS));
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      value = argv[++i]!;
    }
    switch (flag) {
      case '--owner':
        options.owner = nonEmpty(flag, value);
        break;
      case '--name':
        options.name = nonEmpty(flag, value);
        break;
      case '--job':
        options.job = nonEmpty(flag, value);
        break;
      case '--stage':
        stages.push(stage(value));
        break;
      case '--stage-marker':
        markers.push(regex(flag, value));
        break;
      case '--progress-pattern':
        patterns.push(regex(flag, value));
        break;
      case '--duration':
        options.duration = number(flag, value, false);
        break;
      case '--total-size':
        options.totalSize = number(flag, value, false);
        break;
      case '--log-rate':
        options.logRate = number(flag, value, true);
        break;
      case '--grace':
        options.graceMs = number(flag, value, true) * 1000;
        break;
      case '--url':
        options.connection.url = nonEmpty(flag, value);
        break;
      case '--api-key':
        options.connection.apiKey = nonEmpty(flag, value);
        break;
      case '--data-dir':
        options.connection.dataDir = nonEmpty(flag, value);
        break;
    }
  }
  const command = argv.slice(i);
  if (command.length === 0)
    throw new UsageError('no command given: headway run [options] -- <command> [args…]');
  if (options.job === undefined && options.owner === undefined) {
    throw new UsageError(
      '--owner <user> is required to create a job (or give an existing one with --job <id>)',
    );
  }
  options.command = command[0]!;
  options.args = command.slice(1);
  if (stages.length > 0) options.stages = stages;
  if (markers.length > 0) options.stageMarkers = markers;
  if (patterns.length > 0) options.progressPatterns = patterns;
  return options;
}

/** The `headway run` command; resolves with the exit code. */
export async function run(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: RunIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let options: RunArgs | 'help';
  try {
    options = parseRunArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`headway run: ${err.message}\nRun "headway run --help" for usage.\n`);
    return EXIT_USAGE;
  }
  if (options === 'help') {
    io.stdout.write(RUN_HELP);
    return 0;
  }
  const { connection, ...command } = options;
  const url = hubUrl(connection, env);
  const credential = findCredential(connection, env, { tokens: false });
  if (!credential) {
    io.stderr.write(`headway run: ${missingCredential({ tokens: false })}\n`);
    return EXIT_USAGE;
  }
  // Nothing runs unless the hub can take its reports: the same check, and words, as headway watch.
  const check = await checkHub(url, credential);
  if (!check.ok) {
    io.stderr.write(`headway run: ${check.message}\n`);
    return 1;
  }
  const say = (err: { code?: string; message?: string }) =>
    err.code === 'HW_ERR_UNAUTHORIZED'
      ? credentialRefused(credential)
      : `${err.code ? `${err.code}: ` : ''}${err.message ?? String(err)}`;
  try {
    const result = await runCommand({
      ...command,
      stdout: io.stdout as RunCommandOptions['stdout'],
      stderr: io.stderr as RunCommandOptions['stderr'],
      worker: {
        url,
        apiKey: credential.value,
        onError: (err) => io.stderr.write(`headway run: ${say(err)}\n`),
      },
      onJob: (id) => {
        const where = url === DEFAULT_HUB_URL ? '' : ` --url ${url}`;
        io.stderr.write(`headway run: job ${id}; follow it with: headway watch ${id}${where}\n`);
      },
    });
    return result.exitCode;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    io.stderr.write(`headway run: ${say(e)}\n`);
    return e.code === 'HW_WORKER_INVALID_OPTION' ? EXIT_USAGE : 1;
  }
}

function nonEmpty(flag: string, value: string): string {
  if (value === '') throw new UsageError(`${flag} may not be empty`);
  return value;
}

function stage(value: string): StageInput {
  const colon = value.lastIndexOf(':');
  if (colon > 0) {
    const weight = Number(value.slice(colon + 1));
    if (Number.isFinite(weight) && value.slice(colon + 1).trim() !== '') {
      if (weight <= 0) throw new UsageError(`--stage ${value}: the weight must be positive`);
      return { name: value.slice(0, colon), weight };
    }
  }
  if (value === '' || value.length > 128) throw new UsageError('--stage names are 1–128 characters');
  return { name: value };
}

function regex(flag: string, value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (err) {
    throw new UsageError(
      `${flag} ${JSON.stringify(value)} is not a valid regular expression: ${(err as Error).message}`,
    );
  }
}

function number(flag: string, value: string, zeroAllowed: boolean): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (!zeroAllowed && n === 0)) {
    throw new UsageError(
      `${flag} needs a ${zeroAllowed ? 'non-negative' : 'positive'} number, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}
