// One validation path for every input that crosses a process boundary: plain JSON in,
// a validated DTO instance out, or every problem listed.
import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export type DtoClass<T> = new () => T;

function flatten(errors: ValidationError[], path = ''): string[] {
  const out: string[] = [];
  for (const error of errors) {
    const at = path ? `${path}.${error.property}` : error.property;
    for (const message of Object.values(error.constraints ?? {})) {
      out.push(message.startsWith(error.property) ? `${path ? `${path}.` : ''}${message}` : `${at}: ${message}`);
    }
    if (error.children?.length) out.push(...flatten(error.children, at));
  }
  return out;
}

/**
 * Validates a plain value against a DTO class: unknown fields are refused, nested DTOs are
 * checked, and every problem is reported (not only the first).
 */
export function validateDto<T extends object>(cls: DtoClass<T>, plain: unknown): Validated<T> {
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    return { ok: false, problems: [`expected a JSON object, got ${plain === null ? 'null' : Array.isArray(plain) ? 'an array' : typeof plain}`] };
  }
  const instance = plainToInstance(cls, plain, { enableImplicitConversion: false }) as T;
  const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: false });
  if (errors.length > 0) return { ok: false, problems: flatten(errors) };
  return { ok: true, value: instance };
}

export class ValidationFailed extends Error {
  constructor(readonly what: string, readonly problems: string[]) {
    super(`invalid ${what}: ${problems.join('; ')}`);
    this.name = 'ValidationFailed';
  }
}

/** Like validateDto but throws ValidationFailed with every problem. */
export function assertDto<T extends object>(cls: DtoClass<T>, plain: unknown, what = cls.name): T {
  const result = validateDto(cls, plain);
  if (!result.ok) throw new ValidationFailed(what, result.problems);
  return result.value;
}
