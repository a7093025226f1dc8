// User-facing failures, one class per kind, each with a stable code and the subject it is about
// (a file, node, tensor or option). Imports nothing of ours, so every layer may throw these.

export type CondenseErrorCode =
  | 'BAD_OPTION'
  | 'FILE_NOT_FOUND'
  | 'WRITE_FAILED'
  | 'BAD_MODEL'
  | 'BAD_EXTERNAL_DATA'
  | 'BAD_PROBE'
  | 'BAD_CONFIG'
  | 'BAD_STATISTICS'
  | 'RUNTIME'
  | 'PROVIDER_UNAVAILABLE'
  | 'VERIFICATION_FAILED';

/** Base of every error the library throws on bad input; `subject` is what the message is about. */
export class CondenseError extends Error {
  readonly code: CondenseErrorCode;
  readonly subject: string;
  constructor(code: CondenseErrorCode, subject: string, problem: string, options?: { cause?: unknown }) {
    super(`${subject}: ${problem}`, options);
    this.code = code;
    this.subject = subject;
    this.name = new.target.name;
  }
}

/** A command-line option or API option has a value outside what it accepts. */
export class OptionError extends CondenseError {
  constructor(option: string, problem: string) {
    super('BAD_OPTION', option, problem);
  }
}

/** A file that should exist does not, or cannot be read. */
export class FileNotFoundError extends CondenseError {
  constructor(file: string, options?: { cause?: unknown }) {
    super('FILE_NOT_FOUND', file, 'no such file', options);
  }
}

/** An output file could not be written (its folder is read-only, the disk is full...). */
export class FileWriteError extends CondenseError {
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super('WRITE_FAILED', file, problem, options);
  }
}

/** The bytes are not a valid ONNX model, or the graph inside breaks the ONNX rules. */
export class ModelFormatError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('BAD_MODEL', subject, problem, options);
  }
}

/** A tensor's external data is missing, outside the model's folder, or too short. */
export class ExternalDataError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('BAD_EXTERNAL_DATA', subject, problem, options);
  }
}

/** Probe data does not match the model's inputs (name, shape, dtype) or cannot be decoded. */
export class ProbeDataError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('BAD_PROBE', subject, problem, options);
  }
}

/** A config file (condense check) is malformed or has unknown keys. */
export class ConfigError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('BAD_CONFIG', subject, problem, options);
  }
}

/** A statistics file (condense collect) is truncated, corrupted, or from another model or settings. */
export class StatisticsFileError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('BAD_STATISTICS', subject, problem, options);
  }
}

/** onnxruntime could not create a session for, or run, a model. */
export class RuntimeError extends CondenseError {
  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super('RUNTIME', subject, problem, options);
  }
}

/** An execution provider was asked for but is not installed. */
export class ProviderUnavailableError extends CondenseError {
  constructor(provider: string, problem: string, options?: { cause?: unknown }) {
    super('PROVIDER_UNAVAILABLE', provider, problem, options);
  }
}

/** A rewritten model differs from the original by more than the allowed error. */
export class VerificationError extends CondenseError {
  /** Layers whose merges alone exceed the bound. */
  readonly layersAtFault: string[];
  constructor(subject: string, problem: string, layersAtFault: string[]) {
    super('VERIFICATION_FAILED', subject, problem);
    this.layersAtFault = layersAtFault;
  }
}

/** Collects several problems and throws them as one error, so the user sees all of them at once. */
export function joinProblems(problems: string[]): string {
  return problems.length === 1 ? problems[0]! : `${problems.length} problems: ${problems.join('; ')}`;
}
