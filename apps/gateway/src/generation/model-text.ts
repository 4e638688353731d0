// Per model file: the tokenizer and chat template built from its GGUF header, cached by path and
// (mtime, size) so a replaced file is read again. Concurrent first requests share one read.
import { stat } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { readGguf, metaNumber, metaString } from '@baton/gguf';
import { ChatTemplate, ChatTemplateError, Tokenizer } from '@baton/tokenizer';

export interface ModelText {
  path: string;
  tokenizer: Tokenizer;
  /** The model's chat template, or why there is none usable (shown to clients as a 400). */
  chatTemplate: ChatTemplate | { error: string };
  /** `<arch>.context_length` from the header (0 when absent). */
  contextLength: number;
}

interface Entry {
  key: string;
  value: Promise<ModelText>;
}

@Injectable()
export class ModelTextCache {
  private readonly entries = new Map<string, Entry>();

  async get(path: string): Promise<ModelText> {
    let st;
    try {
      st = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `${path} is not on the gateway's machine (the gateway reads the tokenizer and chat template from the GGUF header): copy the file to the same path here`
          : `cannot read ${path}: ${(error as Error).message}`,
      );
    }
    const key = `${st.mtimeMs}:${st.size}`;
    const hit = this.entries.get(path);
    if (hit && hit.key === key) return hit.value;
    const value = load(path);
    this.entries.set(path, { key, value });
    // a failed read is not cached: the next request tries again
    value.catch(() => {
      if (this.entries.get(path)?.value === value) this.entries.delete(path);
    });
    return value;
  }
}

async function load(path: string): Promise<ModelText> {
  const file = await readGguf(path);
  const tokenizer = Tokenizer.fromGguf(file.metadata);
  let chatTemplate: ModelText['chatTemplate'];
  try {
    chatTemplate = ChatTemplate.fromGguf(file.metadata);
  } catch (error) {
    if (!(error instanceof ChatTemplateError)) throw error;
    chatTemplate = { error: error.message };
  }
  const arch = metaString(file.metadata, 'general.architecture');
  const contextLength = (arch && metaNumber(file.metadata, `${arch}.context_length`)) || 0;
  return { path, tokenizer, chatTemplate, contextLength };
}
