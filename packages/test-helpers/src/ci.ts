/**
 * The one rule for suites that need something outside Node (Redis, PostgreSQL,
 * Chromium, Python): outside CI a suite whose service is missing skips with a
 * one-line reason; under CI it fails, so that a green run means every suite ran.
 */

/**
 * Whether a value of the `CI` variable means "running in CI": anything but
 * unset, empty, `false` or `0` (case-insensitive). CI services set `CI=true`;
 * people type `CI=1`; both must count.
 */
export function isCi(value: string | undefined): boolean {
  if (value === undefined) return false;
  const normalized = value.trim().toLowerCase();
  return normalized !== '' && normalized !== 'false' && normalized !== '0';
}

/** True when the tests run in CI (see `isCi`). */
export const IN_CI = isCi(process.env.CI);

/** Whether a suite runs, and its title. */
export interface ServiceGate {
  /** True when the suite must be skipped (never under CI). */
  skip: boolean;
  /** `name`, or `name (skipped: <reason>)` when skipped, for the suite's `describe`. */
  title(name: string): string;
}

/**
 * Gate a suite on a service. `problem` is why `service` cannot be used here, or
 * null when it can. Outside CI a problem skips the suite (the reason is printed
 * once and shown in the suite's title); under CI it throws, which fails the file.
 */
export function requireService(service: string, problem: string | null, ci = IN_CI): ServiceGate {
  if (problem === null) return { skip: false, title: (name) => name };
  if (ci) throw new Error(`${service} is required when CI is set: ${problem}`);
  console.warn(`skipping the ${service} suite: ${problem}`);
  return { skip: true, title: (name) => `${name} (skipped: ${problem})` };
}
