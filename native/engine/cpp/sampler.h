// Token sampling for the last stage, in llama.cpp's default order: penalties, top-k, top-p,
// min-p, temperature, then a draw. The draw is a pure function of (seed, draw index) — the
// engine uses the position of the token being produced — so a run repeats exactly, and a
// sequence re-prefilled after a failure continues with the same tokens.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace baton {

struct SamplingParams {
  float temperature = 0;  // <= 0: greedy (argmax after penalties)
  int32_t top_k = 0;      // 0: off
  float top_p = 1;        // 1: off
  float min_p = 0;        // 0: off
  float repetition_penalty = 1;  // 1: off (divides positive logits, multiplies negative ones)
  float presence_penalty = 0;
  float frequency_penalty = 0;
  int32_t penalty_last_n = 64;   // how many recent tokens the penalties look at
  uint64_t seed = 0;
};

// Uniform double in [0, 1) for (seed, index): splitmix64 of the pair.
double sample_uniform(uint64_t seed, uint64_t index);

// Applies penalties to `logits` in place (history: the sequence's tokens, −1 = unknown) and
// returns the chosen token. `scratch` is reused between calls.
int32_t sample_token(float* logits, int64_t n_vocab, const SamplingParams& params, const int32_t* history, int64_t n_history,
                     uint64_t draw_index, std::vector<std::pair<float, int32_t>>* scratch);

}  // namespace baton
