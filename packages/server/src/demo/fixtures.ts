/**
 * What the demo jobs are about: file names, sizes, languages and playlists,
 * drawn at random so that the dashboard looks like a real media pipeline.
 */
import { randomBytes } from 'node:crypto';

export const MB = 1024 * 1024;

export const random = (min: number, max: number) => min + Math.random() * (max - min);
export const randomInt = (min: number, max: number) => Math.floor(random(min, max + 1));
export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
export const pad = (n: number, width: number) => String(n).padStart(width, '0');
export const round2 = (n: number) => Math.round(n * 100) / 100;

/** A job id the demo chooses itself, so that a retried creation cannot make two jobs. */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** An id as a video site would show it. */
export function videoId(): string {
  return randomBytes(6).toString('base64url');
}

export function formatBytes(bytes: number): string {
  return bytes >= 1024 * MB ? `${(bytes / 1024 / MB).toFixed(2)} GB` : `${(bytes / MB).toFixed(0)} MB`;
}

const MEDIA_FILES: readonly (() => string)[] = [
  () => `lecture-${pad(randomInt(1, 120), 3)}.mp4`,
  () => `keynote-2024-${pick(['berlin', 'austin', 'lisbon', 'tokyo'])}.mov`,
  () => `interview-${pick(['garcia', 'okafor', 'lindqvist', 'tanaka'])}-raw.mkv`,
  () => `webinar-q${randomInt(1, 4)}-review.mp4`,
  () => `podcast-ep${randomInt(80, 160)}.mp4`,
  () => `town-hall-${pick(['march', 'june', 'september', 'december'])}.mov`,
  () => `product-demo-v${randomInt(2, 9)}.webm`,
];
const RESOLUTIONS = ['1920x1080', '1920x1080', '3840x2160', '1280x720'];
const TARGET_LANGUAGES = ['de', 'fr', 'es', 'ja', 'pt', 'it'];
export const LANGUAGE_NAMES: Record<string, string> = {
  en: 'English',
  de: 'German',
  fr: 'French',
  es: 'Spanish',
  ja: 'Japanese',
  pt: 'Portuguese',
  it: 'Italian',
};
export const PLAYLISTS = [
  'CS101 Lectures',
  'Conference Talks 2024',
  'Cooking Basics',
  'Product Tutorials',
  'Physics Lab Recordings',
  'Design Reviews',
];

/** One media file to process, and how its run goes. */
export interface MediaSpec {
  file: string;
  source: string;
  sizeBytes: number;
  durationSeconds: number;
  resolution: string;
  languages: string[];
  /** Where this run fails, if it does. */
  failure: { stage: 'transcode' | 'transcribe'; at: number } | null;
  /** The failed job this one retries. */
  retryOf: string | null;
  attempt: number;
}

export function mediaSpec(fails: boolean): MediaSpec {
  const file = pick(MEDIA_FILES)();
  // Log-uniform between 200 MB and 2 GB: most files are mid-sized, a few are large.
  const sizeBytes = Math.round(Math.exp(random(Math.log(200 * MB), Math.log(2048 * MB))));
  const targets = [...TARGET_LANGUAGES].sort(() => Math.random() - 0.5).slice(0, randomInt(1, 3));
  return {
    file,
    source: `s3://media-ingest/uploads/${file}`,
    sizeBytes,
    durationSeconds: randomInt(600, 5400),
    resolution: pick(RESOLUTIONS),
    languages: ['en', ...targets],
    failure: fails
      ? Math.random() < 0.5
        ? { stage: 'transcode', at: random(0.3, 0.8) }
        : { stage: 'transcribe', at: random(0.2, 0.7) }
      : null,
    retryOf: null,
    attempt: 1,
  };
}
