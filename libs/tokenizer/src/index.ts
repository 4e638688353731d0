export { Tokenizer, IncrementalDecoder, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { loadVocab, plainMetadata, TokenizerError, TokenAttr, TokenType, type Vocab, type VocabType, type GgufMetadata } from './vocab.js';
export { ChatTemplate, ChatTemplateError, type ChatMessage, type ChatRenderOptions } from './chat-template.js';
export { PRE_TOKENIZERS, preTokenize, type PreTokenizerSpec } from './pretokenize.js';
