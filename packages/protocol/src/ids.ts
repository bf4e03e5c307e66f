/** Schemas of the ids that appear in paths, bodies and messages. */
import { Type } from '@sinclair/typebox';
import { JOB_ID, JOB_ID_MAX_LENGTH } from './codes.js';

/** Job ids: 1–128 characters of letters, digits and `._:-` (the pattern of `JOB_ID`). */
export const JobId = Type.String({
  minLength: 1,
  maxLength: JOB_ID_MAX_LENGTH,
  pattern: JOB_ID.source,
  errorMessage: `an id is 1 to ${JOB_ID_MAX_LENGTH} characters: letters, digits and . _ : -`,
});
/** User ids (token `sub`, job owner). */
export const UserId = Type.String({ minLength: 1, maxLength: 256 });
