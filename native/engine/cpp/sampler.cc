// Sampling (see sampler.h).
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace baton {

double sample_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed ^ (index * 0x9E3779B97F4A7C15ull) ^ 0xD1B54A32D192ED03ull;
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t sample_token(float* logits, int64_t n_vocab, const SamplingParams& p, const int32_t* history, int64_t n_history,
                     uint64_t draw_index, std::vector<std::pair<float, int32_t>>* scratch) {
  // Penalties over the last penalty_last_n known tokens.
  bool penalize = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (penalize && p.penalty_last_n != 0 && n_history > 0) {
    int64_t from = p.penalty_last_n < 0 ? 0 : std::max<int64_t>(0, n_history - p.penalty_last_n);
    std::unordered_map<int32_t, int> counts;
    for (int64_t i = from; i < n_history; ++i) {
      if (history[i] >= 0 && history[i] < n_vocab) ++counts[history[i]];
    }
    for (const auto& [token, count] : counts) {
      float& l = logits[token];
      if (p.repetition_penalty != 1.0f) l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
      l -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
    }
  }
  if (p.temperature <= 0.0f) {
    int32_t best = 0;
    for (int64_t i = 1; i < n_vocab; ++i) if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    return best;
  }
  auto& cand = *scratch;
  cand.resize(n_vocab);
  for (int64_t i = 0; i < n_vocab; ++i) cand[i] = {logits[i], static_cast<int32_t>(i)};
  auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n = cand.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), by_logit);
    n = static_cast<size_t>(p.top_k);
  } else if (p.top_p < 1.0f || p.min_p > 0.0f) {
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  bool sorted = (p.top_k > 0 && static_cast<size_t>(p.top_k) < cand.size()) || p.top_p < 1.0f || p.min_p > 0.0f;
  // Probabilities at temperature 1 for top-p / min-p (llama.cpp applies temperature last).
  if (sorted && (p.top_p < 1.0f || p.min_p > 0.0f)) {
    float max_logit = cand[0].first;
    double sum = 0;
    std::vector<double> probs(n);
    for (size_t i = 0; i < n; ++i) { probs[i] = std::exp(static_cast<double>(cand[i].first - max_logit)); sum += probs[i]; }
    if (p.top_p < 1.0f) {
      double cum = 0;
      size_t keep = n;
      for (size_t i = 0; i < n; ++i) {
        cum += probs[i] / sum;
        if (cum >= p.top_p) { keep = i + 1; break; }
      }
      n = std::max<size_t>(keep, 1);
    }
    if (p.min_p > 0.0f) {
      double threshold = p.min_p * probs[0];
      size_t keep = 1;
      while (keep < n && probs[keep] >= threshold) ++keep;
      n = keep;
    }
  }
  // Temperature, softmax over the survivors, draw.
  float max_logit = cand[0].first;
  if (!sorted) for (size_t i = 1; i < n; ++i) max_logit = std::max(max_logit, cand[i].first);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    double w = std::exp(static_cast<double>(cand[i].first - max_logit) / p.temperature);
    cand[i].first = static_cast<float>(w);
    sum += w;
  }
  double u = sample_uniform(p.seed, draw_index) * sum;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += cand[i].first;
    if (u < cum) return cand[i].second;
  }
  return cand[n - 1].second;
}

}  // namespace baton
