// The model's chat template (GGUF `tokenizer.chat_template`, a Jinja template) rendered with
// @huggingface/jinja, the renderer transformers.js uses.
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from './tokenizer.js';
import { TokenizerError, plainMetadata, type GgufMetadata } from './vocab.js';

export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

export interface ChatRenderOptions {
  /** Append the assistant turn's opening so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** Extra variables for templates that read them (e.g. tools, enable_thinking). */
  extra?: Record<string, unknown>;
}

/** Thrown when a chat template is missing, does not parse, or fails while rendering. */
export class ChatTemplateError extends TokenizerError {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source the Jinja source
   * @param bosToken text of the BOS token ('' if none), exposed to the template as bos_token
   * @param eosToken text of the EOS token ('' if none), exposed as eos_token
   */
  constructor(
    readonly source: string,
    readonly bosToken = '',
    readonly eosToken = '',
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the model's chat template does not parse: ${(e as Error).message}`);
    }
  }

  /**
   * The chat template of a GGUF. Throws ChatTemplateError when the file has none
   * (tokenizer.chat_template is missing), naming what to do instead. Pass the model's Tokenizer
   * to take bos_token/eos_token from the ids it resolved (llama.cpp's defaults included).
   */
  static fromGguf(metadata: GgufMetadata, tokenizer?: Tokenizer): ChatTemplate {
    const meta = plainMetadata(metadata);
    const src = meta['tokenizer.chat_template'];
    if (typeof src !== 'string' || src.trim() === '') {
      throw new ChatTemplateError(
        'the model has no chat template (GGUF key tokenizer.chat_template is missing); use /v1/completions with a raw prompt, or a model file that includes a template',
      );
    }
    if (tokenizer) {
      // the ids llama.cpp resolves (with its per-model defaults)
      const text = (id: number | null) => (id === null ? '' : tokenizer.tokenText(id));
      return new ChatTemplate(src, text(tokenizer.bos), text(tokenizer.eos));
    }
    const tokens = meta['tokenizer.ggml.tokens'];
    const text = (key: string): string => {
      const id = meta[key];
      return Array.isArray(tokens) && typeof id === 'number' && typeof tokens[id] === 'string' ? (tokens[id] as string) : '';
    };
    return new ChatTemplate(src, text('tokenizer.ggml.bos_token_id'), text('tokenizer.ggml.eos_token_id'));
  }

  /** Renders the conversation into the prompt text the model expects. */
  render(messages: readonly ChatMessage[], options: ChatRenderOptions = {}): string {
    if (messages.length === 0) throw new ChatTemplateError('a chat needs at least one message');
    try {
      return this.template.render({
        ...options.extra,
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? true,
        bos_token: this.bosToken,
        eos_token: this.eosToken,
      });
    } catch (e) {
      throw new ChatTemplateError(`the model's chat template failed to render: ${(e as Error).message}`);
    }
  }
}
