/** The classes of build failure a user can fix in their model package. */
export type BuildFailureKind = 'INVALID_ARCHIVE' | 'INVALID_CONFIG' | 'MISSING_MODEL_FILE' | 'REQUIREMENT_REFUSED' | 'REQUIREMENT_FAILED' | 'IMPORT_FAILED' | 'BUILD_TIMEOUT';

/** A build failed because of the model package: retrying will not help, the user must change it. */
export class BuildError extends Error {
  override name = 'BuildError';
  constructor(
    readonly kind: BuildFailureKind,
    message: string,
  ) {
    super(message);
  }
}
