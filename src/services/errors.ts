/**
 * Errors services raise for outcomes the caller must hear about. They carry no HTTP
 * knowledge; the API maps each kind to a status (src/api/errors.ts).
 */

/** The kinds of refusal a service can give. */
export type ServiceErrorKind = 'not_found' | 'conflict' | 'invalid' | 'unavailable';

/** A refusal with a message meant for the user and optional structured details. */
export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly kind: ServiceErrorKind,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Something named does not exist. */
export const notFound = (message: string): ServiceError => new ServiceError('not_found', message);
/** The request clashes with the current state (a name taken, a deployment in use). */
export const conflict = (message: string, details?: unknown): ServiceError => new ServiceError('conflict', message, details);
/** The request is well-formed but asks for something not allowed. */
export const invalid = (message: string, details?: unknown): ServiceError => new ServiceError('invalid', message, details);
/** A dependency (Temporal) is not reachable right now. */
export const unavailable = (message: string, cause?: unknown): ServiceError => new ServiceError('unavailable', message, undefined, { cause });
