/** Parsing request input with the zod schemas: the one place the API checks user input. */
import type { z } from 'zod';
import { describeIssues } from '../shared/schemas';
import { ApiError } from './errors';

/** Parses `value` with `schema`, or answers 422 naming each bad field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details = describeIssues(parsed.error);
  throw new ApiError(422, 'invalid', `invalid ${what}: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
}
