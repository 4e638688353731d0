import { describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError } from './chat-template.js';
import { Tokenizer } from './tokenizer.js';

const CHATML =
  "{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";
const LLAMA2 =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}";

describe('ChatTemplate', () => {
  it('renders ChatML with the generation prompt', () => {
    const t = new ChatTemplate(CHATML);
    const msgs = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    expect(t.render(msgs)).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(t.render(msgs, { addGenerationPrompt: false })).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  });

  it('passes bos_token and eos_token from the GGUF', () => {
    const t = ChatTemplate.fromGguf({
      'tokenizer.chat_template': LLAMA2,
      'tokenizer.ggml.tokens': ['<unk>', '<s>', '</s>'],
      'tokenizer.ggml.bos_token_id': 1,
      'tokenizer.ggml.eos_token_id': 2,
    });
    expect(t.render([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }])).toBe(
      '<s>[INST] a [/INST] b</s>[INST] c [/INST]',
    );
  });

  it("takes bos/eos from the tokenizer's resolved ids when given one", () => {
    const meta = {
      'tokenizer.chat_template': LLAMA2,
      'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.tokens': ['<unk>', '<s>', '</s>', '\u2581a'],
      'tokenizer.ggml.token_type': [2, 3, 3, 1],
    };
    // no bos/eos keys: llama.cpp's SentencePiece defaults are 1 and 2
    const t = ChatTemplate.fromGguf(meta, Tokenizer.fromGguf(meta));
    expect(t.bosToken).toBe('<s>');
    expect(t.eosToken).toBe('</s>');
  });

  it("reports the template's own error (raise_exception)", () => {
    const t = new ChatTemplate(LLAMA2, '<s>', '</s>');
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow(/failed to render: Conversation roles must alternate/);
  });

  it('says clearly when the model has no template', () => {
    expect(() => ChatTemplate.fromGguf({ 'tokenizer.ggml.model': 'gpt2' })).toThrow(ChatTemplateError);
    expect(() => ChatTemplate.fromGguf({})).toThrow(/no chat template \(GGUF key tokenizer\.chat_template is missing\)/);
  });

  it('refuses a template that does not parse', () => {
    expect(() => new ChatTemplate('{% for x in %}')).toThrow(/chat template does not parse/);
  });

  it('refuses an empty conversation', () => {
    expect(() => new ChatTemplate(CHATML).render([])).toThrow(/at least one message/);
  });
});
