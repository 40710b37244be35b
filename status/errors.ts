import { ShardwiseError } from '../common';

/** The status page's browser files are missing beside its code (a build that did not copy `status/assets`). */
export class StatusAssetsError extends ShardwiseError {
  /** The folder the files were expected in. */
  readonly dir: string;
  constructor(dir: string, missing: readonly string[], options?: { cause?: unknown }) {
    super(`expected the status page files ${missing.join(', ')} in ${dir}; copy status/assets next to the compiled status module`, options);
    this.name = 'StatusAssetsError';
    this.dir = dir;
  }
}

/** A `/status.json` or `/events` query parameter is not a valid cursor. */
export class StatusQueryError extends ShardwiseError {
  /** The parameter's name. */
  readonly parameter: string;
  constructor(parameter: string, got: string) {
    super(`${parameter}: expected a non-negative integer (entries the page already holds), got ${JSON.stringify(got)}`);
    this.name = 'StatusQueryError';
    this.parameter = parameter;
  }
}
