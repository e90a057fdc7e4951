// Robustness: truncated and mutated chat templates (and hostile contexts) must give a string or
// an INVALID_ARGUMENT error from Parse or Render: never a crash, hang or other status code.
// Deterministic (fixed seeds), so a failure reproduces.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/file.h"
#include "model/jinja/template.h"

namespace moe::model::jinja {
namespace {

using nlohmann::ordered_json;

const std::string kTestdata = std::string(MOE_SOURCE_DIR) + "/model/jinja/testdata";

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  for (const char* name : {"mixtral", "mixtral_legacy", "qwen2_moe", "qwen3_moe", "deepseek_v3"}) {
    seeds.push_back(ReadFile(kTestdata + "/" + name + ".jinja").value_or(""));
  }
  seeds.push_back(
      "{% macro m(a, b=2) %}{{ a ~ b }}{% endmacro %}{% set ns = namespace(x=[]) %}"
      "{% for i in range(3) if i is odd %}{{ m(i) | upper }}{{ loop.index }}{% else %}e{% endfor %}"
      "{{ {'k': [1, 2.5, 'v']} | tojson(indent=1) }}{{ 'a b'.split()[::-1] | join('-') }}"
      "{% call m(1) %}c{% endcall %}{% filter upper %}f{% endfilter %}{# c #}{{- ' x ' -}}");
  return seeds;
}

ordered_json Context() {
  return ordered_json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "messages": [
      {"role": "system", "content": "sys"},
      {"role": "user", "content": "hello"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "content": "42"},
      {"role": "assistant", "content": "<think>r</think>done"},
      {"role": "user", "content": ["not", "a", "string"]}]})");
}

const char* const kFragments[] = {"{%",
                                  "%}",
                                  "{{",
                                  "}}",
                                  "{#",
                                  "#}",
                                  "{%-",
                                  "-%}",
                                  "(",
                                  ")",
                                  "[",
                                  "]",
                                  "{",
                                  "}",
                                  "'",
                                  "\"",
                                  "|",
                                  ".",
                                  ",",
                                  ":",
                                  "-",
                                  "+",
                                  "*",
                                  "**",
                                  "//",
                                  "~",
                                  " is ",
                                  " not ",
                                  " in ",
                                  " if ",
                                  " else ",
                                  "for ",
                                  "endfor",
                                  "endif",
                                  "set ",
                                  "macro ",
                                  "loop",
                                  "messages",
                                  "[::-1]",
                                  "| tojson",
                                  "| length",
                                  "namespace(",
                                  "raise_exception(",
                                  "\\",
                                  "\n",
                                  "0",
                                  "99999999999",
                                  "range(",
                                  "caller()",
                                  "{% break %}",
                                  "{% endset %}",
                                  "\xff",
                                  "\xc3"};

TEST(JinjaFuzzTest, TruncatedAndMutatedTemplatesNeverCrash) {
  std::mt19937 rng(12345);
  const ordered_json context = Context();
  RenderLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_loop_iterations = 20000;
  limits.max_steps = 200000;
  int parsed = 0;
  int rendered = 0;
  int failed = 0;
  int cases = 0;
  for (const std::string& seed : Seeds()) {
    // Every truncation point along the template (a strided subset for long ones).
    const size_t stride = std::max<size_t>(1, seed.size() / 150);
    std::vector<std::string> variants;
    for (size_t cut = 0; cut <= seed.size(); cut += stride) variants.push_back(seed.substr(0, cut));
    for (int k = 0; k < 250; ++k) {
      std::string s = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const size_t pos = rng() % s.size();
        switch (rng() % 3) {
          case 0:  // delete a span
            s.erase(pos, 1 + rng() % 8);
            break;
          case 1:  // insert a fragment
            s.insert(pos, kFragments[rng() % (sizeof(kFragments) / sizeof(kFragments[0]))]);
            break;
          default:  // overwrite a byte
            s[pos] = static_cast<char>(rng() % 256);
        }
      }
      variants.push_back(std::move(s));
    }
    for (const std::string& v : variants) {
      ++cases;
      auto tmpl = Template::Parse(v);
      if (!tmpl.ok()) {
        ASSERT_EQ(tmpl.status().code(), absl::StatusCode::kInvalidArgument) << tmpl.status();
        ++failed;
        continue;
      }
      ++parsed;
      auto out = tmpl->Render(context, limits);
      if (out.ok()) {
        ++rendered;
        EXPECT_LE(out->size(), limits.max_output_bytes);
      } else {
        ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
        ++failed;
      }
    }
  }
  std::printf("%d variants: %d parsed, %d rendered, %d rejected\n", cases, parsed, rendered,
              failed);
  // Both paths must be exercised for the test to mean anything.
  EXPECT_GT(rendered, 50);
  EXPECT_GT(failed, 100);
}

TEST(JinjaFuzzTest, HostileContextsNeverCrash) {
  auto tmpl = Template::Parse(ReadFile(kTestdata + "/qwen3_moe.jinja").value_or(""));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  std::vector<ordered_json> contexts = {
      ordered_json::object(),
      ordered_json::parse(R"({"messages": null})"),
      ordered_json::parse(R"({"messages": "a string"})"),
      ordered_json::parse(R"({"messages": [1, 2, 3]})"),
      ordered_json::parse(R"({"messages": [{"role": 5, "content": {"x": 1}}]})"),
      ordered_json::parse(R"({"messages": [{"role": "assistant", "content": null}]})"),
      ordered_json::parse(R"({"messages": [{"role": "user", "content": "x"}], "tools": 7})"),
      ordered_json::parse(
          R"({"messages": [{"role": "assistant", "content": "", "tool_calls": [5, null]}]})"),
  };
  ordered_json deep = "leaf";
  for (int i = 0; i < 2000; ++i) deep = ordered_json::array({deep});
  contexts.push_back({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", {deep}}});
  for (const ordered_json& ctx : contexts) {
    auto out = tmpl->Render(ctx);
    if (!out.ok()) {
      EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace moe::model::jinja
