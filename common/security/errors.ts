import { ShardwiseError } from '../errors';

/**
 * Certificates or keys could not be made, read or trusted: a missing file, an `openssl` that failed, a
 * certificate without a shardwise identity. The message names the file or the command.
 */
export class CertificateError extends ShardwiseError {
  /** The file or command concerned. */
  readonly subject: string;
  constructor(subject: string, message: string, options?: { cause?: unknown }) {
    super(`${subject}: ${message}`, options);
    this.name = 'CertificateError';
    this.subject = subject;
  }
}
