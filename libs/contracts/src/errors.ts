// Error codes that cross process boundaries (RPC replies, HTTP bodies, ERROR frames).
export enum ErrorCode {
  VALIDATION = 'VALIDATION',
  NOT_FOUND = 'NOT_FOUND',
  TIMEOUT = 'TIMEOUT',
  UNAVAILABLE = 'UNAVAILABLE',
  INFEASIBLE = 'INFEASIBLE',
  CAPACITY = 'CAPACITY',
  VERSION_MISMATCH = 'VERSION_MISMATCH',
  AUTH = 'AUTH',
  INTERNAL = 'INTERNAL',
}

/** The shape of an error on the wire. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export class BatonError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly details?: unknown) {
    super(message);
    this.name = 'BatonError';
  }

  toBody(): ErrorBody {
    return this.details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details: this.details };
  }

  static fromBody(body: ErrorBody): BatonError {
    return new BatonError(body.code, body.message, body.details);
  }
}

export function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === 'object' && value !== null && typeof (value as ErrorBody).code === 'string' && typeof (value as ErrorBody).message === 'string';
}
