// Reads model manifests from GGUF headers, cached by path and modification time.
import { stat } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { BatonError, ErrorCode, type ModelManifest } from '@baton/contracts';
import { readModelManifest } from '@baton/gguf';

@Injectable()
export class ManifestReader {
  private readonly cache = new Map<string, { mtimeMs: number; manifest: ModelManifest }>();

  async read(path: string): Promise<ModelManifest> {
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(path)).mtimeMs;
    } catch {
      throw new BatonError(ErrorCode.NOT_FOUND, `model file ${path} does not exist on the planner's machine`);
    }
    const cached = this.cache.get(path);
    if (cached && cached.mtimeMs === mtimeMs) return cached.manifest;
    try {
      const manifest = await readModelManifest(path);
      this.cache.set(path, { mtimeMs, manifest });
      return manifest;
    } catch (error) {
      throw new BatonError(ErrorCode.VALIDATION, `cannot read ${path} as a GGUF model: ${(error as Error).message}`);
    }
  }
}
