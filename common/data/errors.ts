import { ShardwiseError } from '../errors';

/** A CIFAR-10 file or folder is missing, truncated or malformed. */
export class DatasetError extends ShardwiseError {
  /** File or folder the problem was found in. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatasetError';
    this.path = path;
  }
}

/** Fetching the dataset archive failed: HTTP status, connection dropped mid-body, or extraction. */
export class DownloadError extends ShardwiseError {
  /** The URL that was being fetched. */
  readonly url: string;
  /** HTTP status code when the server answered with one that is not 200. */
  readonly status?: number;
  constructor(url: string, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.name = 'DownloadError';
    this.url = url;
    this.status = options?.status;
  }
}

/** The downloaded archive does not have the published MD5 digest (corrupt or tampered download). */
export class ChecksumError extends DownloadError {
  readonly expected: string;
  readonly actual: string;
  constructor(url: string, expected: string, actual: string) {
    super(url, `MD5 mismatch for ${url}: expected ${expected}, got ${actual}`);
    this.name = 'ChecksumError';
    this.expected = expected;
    this.actual = actual;
  }
}
