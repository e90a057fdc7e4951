#include "model/tokenizer/bpe_model.h"

#include <nlohmann/json.hpp>
#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/tokenizer/utf8.h"

namespace moe::model::tokenizer_internal {
namespace {

using nlohmann::json;

std::string OptionalString(const json& model, const char* key) {
  if (!model.contains(key) || model.at(key).is_null()) return std::string();
  return model.at(key).get<std::string>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& model) {
  std::unique_ptr<BpeModel> bpe(new BpeModel);
  if (!model.contains("vocab") || !model.at("vocab").is_object()) {
    return absl::InvalidArgumentError("BPE model has no \"vocab\" object");
  }
  // Ids index a dense table: bound them so a hostile file cannot make us allocate gigabytes.
  const int64_t id_limit = std::min<int64_t>(kMaxTokenId, 4 * model.at("vocab").size() + 65536);
  int32_t max_id = -1;
  for (const auto& [token, id_json] : model.at("vocab").items()) {
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= id_limit) {
      return absl::InvalidArgumentError(absl::StrCat("vocab id ", id, " out of range"));
    }
    bpe->vocab_[token] = static_cast<int32_t>(id);
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  bpe->id_to_token_.resize(max_id + 1);
  bpe->has_id_.resize(max_id + 1);
  for (const auto& [token, id] : bpe->vocab_) {
    bpe->id_to_token_[id] = token;
    bpe->has_id_[id] = true;
  }

  bpe->continuing_subword_prefix_ = OptionalString(model, "continuing_subword_prefix");
  bpe->end_of_word_suffix_ = OptionalString(model, "end_of_word_suffix");
  bpe->byte_fallback_ = model.value("byte_fallback", false);
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  bpe->fuse_unk_ = model.contains("fuse_unk") && !model.at("fuse_unk").is_null() &&
                   model.at("fuse_unk").get<bool>();
  const std::string unk = OptionalString(model, "unk_token");
  if (!unk.empty()) {
    auto it = bpe->vocab_.find(unk);
    if (it == bpe->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unk_token '", unk, "' is not in the vocab"));
    }
    bpe->unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bpe->vocab_.find(absl::StrFormat("<0x%02X>", b));
    bpe->byte_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
  }

  if (model.contains("merges") && !model.at("merges").is_null()) {
    const size_t prefix_len = bpe->continuing_subword_prefix_.size();
    int32_t rank = 0;
    for (const json& merge : model.at("merges")) {
      std::string a;
      std::string b;
      if (merge.is_string()) {
        const std::string line = merge.get<std::string>();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat("malformed merge '", line, "'"));
        }
        a = line.substr(0, space);
        b = line.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2) {
        a = merge[0].get<std::string>();
        b = merge[1].get<std::string>();
      } else {
        return absl::InvalidArgumentError(absl::StrCat("malformed merge ", merge.dump()));
      }
      auto ia = bpe->vocab_.find(a);
      auto ib = bpe->vocab_.find(b);
      if (ia == bpe->vocab_.end() || ib == bpe->vocab_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("merge '", a, " ", b, "' refers to a token not in the vocab"));
      }
      const std::string merged = a + b.substr(std::min(prefix_len, b.size()));
      auto im = bpe->vocab_.find(merged);
      if (im == bpe->vocab_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("merge '", a, " ", b, "' produces '", merged, "', not in the vocab"));
      }
      // Like HF, a repeated pair keeps its last rank.
      bpe->merges_[PairKey(ia->second, ib->second)] = Merge{rank++, im->second};
    }
  }
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(ToAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const {
  int32_t pending_unk = -1;  // an unk symbol not yet emitted (kept open for fuse_unk)
  std::string decorated;
  for (size_t i = 0; i < word.size();) {
    const size_t end = i + CharLen(word, i);
    std::string_view s = word.substr(i, end - i);
    const bool add_prefix = i > 0 && !continuing_subword_prefix_.empty();
    const bool add_suffix = end == word.size() && !end_of_word_suffix_.empty();
    if (add_prefix || add_suffix) {
      decorated = absl::StrCat(add_prefix ? continuing_subword_prefix_ : std::string(), ToAbsl(s),
                               add_suffix ? end_of_word_suffix_ : std::string());
      s = decorated;
    }
    i = end;
    if (auto it = vocab_.find(ToAbsl(s)); it != vocab_.end()) {
      if (pending_unk >= 0) symbols->push_back(pending_unk);
      pending_unk = -1;
      symbols->push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (char c : s) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        // As in HF, byte tokens go out before a pending unk.
        for (char c : s) symbols->push_back(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (pending_unk >= 0 && !fuse_unk_) symbols->push_back(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token an unknown character is dropped, as in HF.
  }
  if (pending_unk >= 0) symbols->push_back(pending_unk);
}

void BpeModel::MergeAll(std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2 || merges_.empty()) return;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) symbols[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  // Min-heap on (rank, pos): the lowest-ranked merge, leftmost among equals.
  auto later = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(PairKey(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip entries made stale by earlier merges.
    auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  ids->clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(ToAbsl(word)); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  InitialSymbols(word, &symbols);
  MergeAll(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

}  // namespace moe::model::tokenizer_internal
