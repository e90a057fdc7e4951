#include "model/demo_tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace moe::model {
namespace {

// --- deterministic randomness (integer only) ------------------------------------------------

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (the tiny modulo bias is irrelevant here and keeps it simple).
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// --- the corpus ------------------------------------------------------------------------------

// Common English words, roughly by frequency. Contractions are split by the pre-tokenizer.
constexpr const char* kWords[] = {
    "the",    "of",      "and",      "to",      "a",        "in",      "is",     "it",
    "you",    "that",    "he",       "was",     "for",      "on",      "are",    "with",
    "as",     "I",       "his",      "they",    "be",       "at",      "one",    "have",
    "this",   "from",    "or",       "had",     "by",       "not",     "word",   "but",
    "what",   "some",    "we",       "can",     "out",      "other",   "were",   "all",
    "there",  "when",    "up",       "use",     "your",     "how",     "said",   "an",
    "each",   "she",     "which",    "do",      "their",    "time",    "if",     "will",
    "way",    "about",   "many",     "then",    "them",     "write",   "would",  "like",
    "so",     "these",   "her",      "long",    "make",     "thing",   "see",    "him",
    "two",    "has",     "look",     "more",    "day",      "could",   "go",     "come",
    "did",    "number",  "sound",    "no",      "most",     "people",  "my",     "over",
    "know",   "water",   "than",     "call",    "first",    "who",     "may",    "down",
    "side",   "been",    "now",      "find",    "any",      "new",     "work",   "part",
    "take",   "get",     "place",    "made",    "live",     "where",   "after",  "back",
    "little", "only",    "round",    "man",     "year",     "came",    "show",   "every",
    "good",   "me",      "give",     "our",     "under",    "name",    "very",   "through",
    "just",   "form",    "sentence", "great",   "think",    "say",     "help",   "low",
    "line",   "differ",  "turn",     "cause",   "much",     "mean",    "before", "move",
    "right",  "boy",     "old",      "too",     "same",     "tell",    "does",   "set",
    "three",  "want",    "air",      "well",    "also",     "play",    "small",  "end",
    "put",    "home",    "read",     "hand",    "port",     "large",   "spell",  "add",
    "even",   "land",    "here",     "must",    "big",      "high",    "such",   "follow",
    "act",    "why",     "ask",      "men",     "change",   "went",    "light",  "kind",
    "off",    "need",    "house",    "picture", "try",      "us",      "again",  "animal",
    "point",  "mother",  "world",    "near",    "build",    "self",    "earth",  "father",
    "head",   "stand",   "own",      "page",    "should",   "country", "found",  "answer",
    "school", "grow",    "study",    "still",   "learn",    "plant",   "cover",  "food",
    "sun",    "four",    "between",  "state",   "keep",     "eye",     "never",  "last",
    "let",    "thought", "city",     "tree",    "cross",    "farm",    "hard",   "start",
    "might",  "story",   "saw",      "far",     "sea",      "draw",    "left",   "late",
    "run",    "don't",   "while",    "press",   "close",    "night",   "real",   "life",
    "few",    "north",   "it's",     "model",   "expert",   "token",   "server", "request",
    "memory", "network", "data",     "system",  "question",
};

// English-like syllables for synthetic (rare) words.
constexpr const char* kOnsets[] = {"",   "b",  "c",  "d",  "f",  "g",  "h",  "j",  "k",  "l",
                                   "m",  "n",  "p",  "r",  "s",  "t",  "v",  "w",  "y",  "z",
                                   "br", "cr", "dr", "fr", "gr", "pr", "tr", "bl", "cl", "fl",
                                   "gl", "pl", "sl", "st", "sp", "sk", "sh", "ch", "th", "wh"};
constexpr const char* kVowels[] = {"a",  "e",  "i",  "o",  "u", "ai", "ea", "ee",
                                   "oo", "ou", "ie", "io", "a", "e",  "i",  "o"};
constexpr const char* kCodas[] = {"",   "",   "",   "n",  "r",  "s",  "t",  "l",  "m",
                                  "nd", "st", "ng", "ck", "rt", "nt", "sh", "ch", "th"};

template <size_t N>
const char* Pick(SplitMix64& rng, const char* const (&arr)[N]) {
  return arr[rng.Below(N)];
}

std::string SyntheticWord(SplitMix64& rng) {
  const int syllables = 1 + static_cast<int>(rng.Below(4));
  std::string w;
  for (int s = 0; s < syllables; ++s) {
    w += Pick(rng, kOnsets);
    w += Pick(rng, kVowels);
    w += Pick(rng, kCodas);
  }
  return w;
}

// Sentences of Zipf-sampled common words, with capitals, commas, numbers, contractions and
// paragraph breaks.
std::string GenerateCorpusText(size_t target_chars) {
  SplitMix64 rng(0x5eed0f7e57c0ffeeull);
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::vector<uint64_t> cumulative(kNumWords);
  uint64_t total = 0;
  for (size_t r = 0; r < kNumWords; ++r) {
    total += 1000000 / (r + 2);  // Zipf
    cumulative[r] = total;
  }
  auto sample = [&]() -> std::string {
    uint64_t x = rng.Below(total);
    size_t r = static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), x) -
                                   cumulative.begin());
    return kWords[std::min(r, kNumWords - 1)];
  };
  std::string text;
  int sentence_in_paragraph = 0;
  while (text.size() < target_chars) {
    const int n = 4 + static_cast<int>(rng.Below(12));
    for (int i = 0; i < n; ++i) {
      std::string w;
      if (rng.Below(100) < 3) {
        w = std::to_string(rng.Below(100) < 50 ? 1900 + rng.Below(130) : rng.Below(1000));
      } else {
        w = sample();
      }
      if (i == 0 && w[0] >= 'a' && w[0] <= 'z') w[0] = static_cast<char>(w[0] - 'a' + 'A');
      if (i > 0) text += ' ';
      text += w;
      if (i + 1 < n && rng.Below(100) < 8) text += ',';
    }
    const uint64_t p = rng.Below(100);
    text += p < 80 ? "." : p < 92 ? "?" : "!";
    if (++sentence_in_paragraph >= 3 + static_cast<int>(rng.Below(4))) {
      text += "\n\n";
      sentence_in_paragraph = 0;
    } else {
      text += ' ';
    }
  }
  return text;
}

bool IsLetter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsSpace(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The GPT-2 pre-tokenizer regex on ASCII text:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::vector<std::string_view> PreTokenize(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  const size_t n = s.size();
  auto run = [&](size_t j, auto pred) {
    while (j < n && pred(static_cast<unsigned char>(s[j]))) ++j;
    return j;
  };
  auto other = [](unsigned char c) { return !IsSpace(c) && !IsLetter(c) && !IsDigit(c); };
  while (i < n) {
    if (s[i] == '\'') {
      for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}) {
        if (s.substr(i, c.size()) == c) {
          out.push_back(s.substr(i, c.size()));
          i += c.size();
          goto next;
        }
      }
    }
    {
      size_t j =
          (s[i] == ' ' && i + 1 < n && !IsSpace(static_cast<unsigned char>(s[i + 1]))) ? i + 1 : i;
      unsigned char c = static_cast<unsigned char>(s[j]);
      size_t end;
      if (IsLetter(c)) {
        end = run(j, IsLetter);
      } else if (IsDigit(c)) {
        end = run(j, IsDigit);
      } else if (!IsSpace(c)) {
        end = run(j, other);
      } else {
        end = run(i, IsSpace);
        // \s+(?!\S): leave the last whitespace char for the next word when one follows.
        if (end < n && end - i > 1) --end;
      }
      out.push_back(s.substr(i, end - i));
      i = end;
    }
  next:;
  }
  return out;
}

// --- training ---------------------------------------------------------------------------------

using PairKey = uint64_t;
PairKey Key(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

struct HeapEntry {
  int64_t count;
  PairKey pair;
  // Highest count first; ties to the smallest (left id, right id).
  bool operator<(const HeapEntry& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

class Trainer {
 public:
  Trainer() {
    for (int b = 0; b < 256; ++b) {
      tokens_.push_back(std::string(1, static_cast<char>(b)));
      ids_.emplace(tokens_.back(), b);
    }
  }

  void AddWord(std::string_view bytes, int64_t count) {
    if (bytes.empty() || count <= 0) return;
    auto [it, inserted] = word_index_.try_emplace(std::string(bytes), words_.size());
    if (!inserted) {  // same word again: only its count grows
      Word& w = words_[it->second];
      AddPairs(w.syms, count, it->second);
      w.count += count;
      return;
    }
    Word w;
    for (unsigned char c : bytes) w.syms.push_back(c);
    ApplyKnownMerges(&w.syms);
    w.count = count;
    words_.push_back(std::move(w));
    AddPairs(words_.back().syms, count, words_.size() - 1);
  }

  // One merge; false when no mergeable pair is left.
  bool Step() {
    while (!heap_.empty()) {
      HeapEntry top = heap_.top();
      heap_.pop();
      auto it = counts_.find(top.pair);
      const int64_t cur = it == counts_.end() ? 0 : it->second;
      if (cur != top.count) {
        if (cur > 0 && cur < top.count) heap_.push({cur, top.pair});
        continue;
      }
      if (cur <= 0 || banned_.count(top.pair)) continue;
      const int a = static_cast<int>(top.pair >> 32);
      const int b = static_cast<int>(top.pair & 0xffffffffu);
      std::string merged = tokens_[a] + tokens_[b];
      if (ids_.count(merged) != 0) {
        // Another split already spells this token: keep one merge per token.
        banned_.insert(top.pair);
        continue;
      }
      const int id = static_cast<int>(tokens_.size());
      tokens_.push_back(merged);
      ids_.emplace(std::move(merged), id);
      merges_.emplace_back(a, b);
      ranks_.emplace(top.pair, static_cast<int>(merges_.size()) - 1);
      Apply(top.pair, a, b, id);
      return true;
    }
    return false;
  }

  int num_merges() const { return static_cast<int>(merges_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::vector<std::pair<int, int>>& merges() const { return merges_; }

 private:
  struct Word {
    std::vector<int> syms;
    int64_t count = 0;
  };

  void AddPairs(const std::vector<int>& syms, int64_t count, size_t w) {
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      PairKey k = Key(syms[i], syms[i + 1]);
      int64_t& c = counts_[k];
      c += count;
      where_[k].push_back(static_cast<int>(w));
      if (!banned_.count(k)) heap_.push({c, k});
    }
  }

  // BPE-encodes a new word with the merges learned so far (lowest rank first).
  void ApplyKnownMerges(std::vector<int>* syms) const {
    while (syms->size() > 1) {
      int best_rank = -1;
      for (size_t i = 0; i + 1 < syms->size(); ++i) {
        auto it = ranks_.find(Key((*syms)[i], (*syms)[i + 1]));
        if (it != ranks_.end() && (best_rank < 0 || it->second < best_rank)) {
          best_rank = it->second;
        }
      }
      if (best_rank < 0) return;
      const auto [a, b] = merges_[best_rank];
      const int id = 256 + best_rank;
      std::vector<int> out;
      for (size_t i = 0; i < syms->size(); ++i) {
        if (i + 1 < syms->size() && (*syms)[i] == a && (*syms)[i + 1] == b) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back((*syms)[i]);
        }
      }
      *syms = std::move(out);
    }
  }

  void Apply(PairKey pair, int a, int b, int id) {
    std::vector<int> touched = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    std::unordered_set<PairKey> changed;
    for (int wi : touched) {
      Word& w = words_[wi];
      bool found = false;
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        if (w.syms[i] == a && w.syms[i + 1] == b) found = true;
      }
      if (!found) continue;
      std::vector<int> out;
      out.reserve(w.syms.size());
      for (size_t i = 0; i < w.syms.size(); ++i) {
        if (i + 1 < w.syms.size() && w.syms[i] == a && w.syms[i + 1] == b) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(w.syms[i]);
        }
      }
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        PairKey k = Key(w.syms[i], w.syms[i + 1]);
        counts_[k] -= w.count;
        changed.insert(k);
      }
      for (size_t i = 0; i + 1 < out.size(); ++i) {
        PairKey k = Key(out[i], out[i + 1]);
        counts_[k] += w.count;
        if (out[i] == id || out[i + 1] == id) where_[k].push_back(wi);
        changed.insert(k);
      }
      w.syms = std::move(out);
    }
    // Push the counts that changed (order irrelevant: the heap order is total).
    for (PairKey k : changed) {
      auto it = counts_.find(k);
      if (it == counts_.end()) continue;
      if (it->second <= 0) {
        counts_.erase(it);
        continue;
      }
      if (!banned_.count(k)) heap_.push({it->second, k});
    }
  }

  std::vector<std::string> tokens_;  // raw bytes of each token
  std::unordered_map<std::string, int> ids_;
  std::vector<std::pair<int, int>> merges_;
  std::unordered_map<PairKey, int> ranks_;
  std::vector<Word> words_;
  std::unordered_map<std::string, size_t> word_index_;
  std::unordered_map<PairKey, int64_t> counts_;
  std::unordered_map<PairKey, std::vector<int>> where_;
  std::unordered_set<PairKey> banned_;
  std::priority_queue<HeapEntry> heap_;
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to U+0100...
std::array<std::string, 256> ByteToUnicode() {
  std::array<int, 256> cp{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) cp[b] = printable[b] ? b : 256 + n++;
  std::array<std::string, 256> out;
  for (int b = 0; b < 256; ++b) {
    const int c = cp[b];
    std::string s;
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else {  // < 0x800 for every code point here
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

}  // namespace

std::string ByteLevelEncode(std::string_view bytes) {
  static const std::array<std::string, 256> table = ByteToUnicode();
  std::string out;
  for (unsigned char c : bytes) out += table[c];
  return out;
}

BpeVocab TrainDemoBpe(int num_merges) {
  Trainer trainer;
  // ~50k words of generated English; pre-token counts.
  const std::string text = GenerateCorpusText(300000);
  std::unordered_map<std::string_view, int64_t> counts;
  for (std::string_view p : PreTokenize(text)) ++counts[p];
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());  // deterministic insertion order
  for (const auto& [w, c] : sorted) trainer.AddWord(w, c);

  // Rare words of the same language (Zipf tail): enough for the requested merges, and more
  // whenever training runs out of pairs.
  SplitMix64 rng(0x0ddba11ull);
  std::unordered_set<std::string> seen;
  int64_t rank = 0;
  auto add_synthetic = [&](int n) {
    for (int added = 0; added < n;) {
      std::string w = SyntheticWord(rng);
      if (w.size() < 2 || !seen.insert(w).second) continue;
      const int64_t c = std::max<int64_t>(1, 4000 / (rank + 40));
      trainer.AddWord(" " + w, c);
      if (rank % 7 == 0) {  // sometimes capitalised, sentence-initial
        std::string cap = w;
        cap[0] = static_cast<char>(cap[0] - 'a' + 'A');
        trainer.AddWord(cap, std::max<int64_t>(1, c / 4));
      }
      ++rank;
      ++added;
    }
  };
  if (num_merges > 1000) add_synthetic(num_merges / 2);
  while (trainer.num_merges() < num_merges) {
    if (!trainer.Step()) add_synthetic(2000);
  }

  BpeVocab vocab;
  for (const std::string& t : trainer.tokens()) vocab.tokens.push_back(ByteLevelEncode(t));
  for (const auto& [a, b] : trainer.merges()) {
    vocab.merges.emplace_back(vocab.tokens[a], vocab.tokens[b]);
  }
  return vocab;
}

absl::StatusOr<std::string> DemoTokenizerJson(int vocab_size) {
  if (vocab_size < 256 + kDemoNumSpecialTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size ", vocab_size, " is below ", 256 + kDemoNumSpecialTokens));
  }
  const int num_merges = vocab_size - 256 - kDemoNumSpecialTokens;
  BpeVocab bpe = TrainDemoBpe(num_merges);
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  const char* specials[] = {kDemoEndOfText, kDemoImStart, kDemoImEnd};
  for (int i = 0; i < kDemoNumSpecialTokens; ++i) {
    added.push_back({{"id", vocab_size - kDemoNumSpecialTokens + i},
                     {"content", specials[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  ojson vocab = ojson::object();
  for (size_t i = 0; i < bpe.tokens.size(); ++i) vocab[bpe.tokens[i]] = static_cast<int>(i);
  for (int i = 0; i < kDemoNumSpecialTokens; ++i) {
    vocab[specials[i]] = vocab_size - kDemoNumSpecialTokens + i;
  }
  ojson merges = ojson::array();
  for (const auto& [a, b] : bpe.merges) merges.push_back(a + " " + b);
  ojson root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return root.dump(2);
}

// Qwen1.5's ChatML template: a default system prompt unless the conversation brings one.
const char kDemoChatTemplate[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

std::string DemoTokenizerConfigJson(int vocab_size, int model_max_length) {
  using ojson = nlohmann::ordered_json;
  ojson decoder = ojson::object();
  const char* specials[] = {kDemoEndOfText, kDemoImStart, kDemoImEnd};
  for (int i = 0; i < kDemoNumSpecialTokens; ++i) {
    decoder[std::to_string(vocab_size - kDemoNumSpecialTokens + i)] = {
        {"content", specials[i]}, {"lstrip", false},      {"normalized", false},
        {"rstrip", false},        {"single_word", false}, {"special", true}};
  }
  ojson root = {
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"add_prefix_space", false},
      {"added_tokens_decoder", decoder},
      {"additional_special_tokens", {kDemoImStart, kDemoImEnd}},
      {"bos_token", kDemoEndOfText},
      {"chat_template", kDemoChatTemplate},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", kDemoEndOfText},
      {"errors", "replace"},
      {"model_max_length", model_max_length},
      {"pad_token", kDemoEndOfText},
      {"split_special_tokens", false},
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"unk_token", nullptr},
  };
  return root.dump(2);
}

std::string DemoSpecialTokensMapJson() {
  nlohmann::ordered_json root = {
      {"additional_special_tokens", {kDemoImStart, kDemoImEnd}},
      {"bos_token", kDemoEndOfText},
      {"eos_token", kDemoEndOfText},
      {"pad_token", kDemoEndOfText},
  };
  return root.dump(2);
}

}  // namespace moe::model
