import { ShardwiseError } from '../errors';

/** A job spec failed to load or validate. Lists every problem found, each naming its field. */
export class JobSpecError extends ShardwiseError {
  /** Where the spec came from (a file path, or `<inline>`). */
  readonly source: string;
  /** One line per problem: `field.path: what is wrong`. */
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(`invalid job spec ${source}:\n  - ${problems.join('\n  - ')}`, options);
    this.name = 'JobSpecError';
    this.source = source;
    this.problems = problems;
  }
}
