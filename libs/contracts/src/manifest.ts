// What the planner and KV manager need to know about a model, read from a GGUF header
// (`baton model inspect --json` prints exactly this).
export type KvDType = 'f32' | 'f16' | 'q8_0';
export const KV_DTYPES: readonly KvDType[] = ['f32', 'f16', 'q8_0'];

export interface ModelManifest {
  /** Served model name (general.name or the file name). */
  name: string;
  arch: string;
  /** GGUF general.file_type as a name, e.g. "Q8_0", "F16", "MOSTLY_Q4_K_M". */
  fileType: string;
  layers: number;
  embeddingLength: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  contextLength: number;
  vocabSize: number;
  fileBytes: number;
  /** Weight bytes of each transformer layer, index = layer. */
  layerBytes: number[];
  /** Token embedding table bytes (held by the first stage). */
  embedBytes: number;
  /** Output norm + head bytes (held by the last stage; 0 extra when tied to the embedding). */
  headBytes: number;
  /** Whether the head reuses the token embedding (the last stage then also maps it). */
  tiedEmbeddings: boolean;
  /** KV bytes per token summed over all layers, by KV dtype. */
  kvBytesPerToken: Record<KvDType, number>;
  /** Bytes of one token's hidden state crossing a stage boundary (f32). */
  activationBytesPerToken: number;
}
