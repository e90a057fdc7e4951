// Encode/decode throughput on the golden byte-level tokenizer and on the SentencePiece-style
// test tokenizer (no pre-tokenizer: the whole text is one BPE word, the worst case for the
// merge loop). Run: build/model/tokenizer/tokenizer_benchmark
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_test_util.h"

namespace moe::model {
namespace {

// About `bytes` of mixed English, code, CJK, emoji and whitespace.
std::string MixedText(size_t bytes) {
  const std::string unit =
      "The quick brown fox jumps over the lazy dog. In 2024, the server handled 1234567 "
      "requests.\n    def main():\n        print(\"hello, world\")\n東京は日本の首都です。"
      "🚀 Café naïve résumé — مرحبا بالعالم\t\t  ";
  std::string text;
  while (text.size() < bytes) text += unit;
  return text;
}

void RunEncode(benchmark::State& state, const Tokenizer& tok) {
  const std::string text = MixedText(static_cast<size_t>(state.range(0)));
  size_t ids = 0;
  for (auto _ : state) {
    std::vector<int32_t> out = tok.Encode(text);
    ids = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(ids);
}

void BM_EncodeByteLevel(benchmark::State& state) {
  static const auto tok =
      *Tokenizer::FromFile(std::string(MOE_GOLDEN_DIR) + "/tiny-qwen3moe/hf-f32/tokenizer.json");
  RunEncode(state, *tok);
}
BENCHMARK(BM_EncodeByteLevel)->Arg(1 << 10)->Arg(1 << 20);

void BM_EncodeSentencePieceOneWord(benchmark::State& state) {
  static const auto tok = *Tokenizer::FromJson(testing::SentencePieceStyleTokenizerJson());
  RunEncode(state, *tok);
}
BENCHMARK(BM_EncodeSentencePieceOneWord)->Arg(1 << 10)->Arg(1 << 20);

void BM_DecodeByteLevel(benchmark::State& state) {
  static const auto tok =
      *Tokenizer::FromFile(std::string(MOE_GOLDEN_DIR) + "/tiny-qwen3moe/hf-f32/tokenizer.json");
  const std::vector<int32_t> ids = tok->Encode(MixedText(1 << 20));
  for (auto _ : state) benchmark::DoNotOptimize(tok->Decode(ids));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ids.size()));
}
BENCHMARK(BM_DecodeByteLevel);

}  // namespace
}  // namespace moe::model

BENCHMARK_MAIN();
