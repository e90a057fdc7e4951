#include "model/jinja/template.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"

namespace moe::model::jinja {
namespace {

using nlohmann::ordered_json;

// Renders `source` with the JSON object `context`; "ERROR: <message>" on failure.
std::string R(const std::string& source, const std::string& context = "{}") {
  auto tmpl = Template::Parse(source);
  if (!tmpl.ok()) return "ERROR: " + std::string(tmpl.status().message());
  auto out = tmpl->Render(ordered_json::parse(context));
  if (!out.ok()) return "ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(JinjaTemplateTest, TextAndExpressions) {
  EXPECT_EQ(R("hello"), "hello");
  EXPECT_EQ(R("hello\n"), "hello");  // one trailing newline is dropped
  EXPECT_EQ(R("hello\n\n"), "hello\n");
  EXPECT_EQ(R("{{ 1 }}|{{ 2.5 }}|{{ 3.0 }}|{{ -4 }}|{{ 7 // 2 }}|{{ 7 / 2 }}"),
            "1|2.5|3.0|-4|3|3.5");
  EXPECT_EQ(R("{{ true }}|{{ False }}|{{ none }}|{{ None }}|{{ nothing }}|"), "true|false||||");
  EXPECT_EQ(R("{{ [1, 'a', none, true] }}"), "[1, \"a\", null, true]");
  EXPECT_EQ(R("{{ {'a': 1, 'b': [2]} }}"), "{\"a\": 1, \"b\": [2]}");
  EXPECT_EQ(R("{{ {'a': {'b': 1}} }}"), "{\"a\": {\"b\": 1}}");  // '}}' inside a dict literal
  EXPECT_EQ(R("{{ name }}", R"({"name": "Ada"})"), "Ada");
}

TEST(JinjaTemplateTest, StringLiterals) {
  EXPECT_EQ(R(R"({{ 'a\nb\t\'c\' \"d\" \\ \u00e9' }})"), "a\nb\t'c' \"d\" \\ \xC3\xA9");
  EXPECT_EQ(R(R"({{ "double" ~ 'single' }})"), "doublesingle");
  EXPECT_EQ(R("{{ 'a' 'b' }}"), "ab");  // adjacent literals concatenate
}

TEST(JinjaTemplateTest, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(R("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(R("a {#- comment -#} b"), "ab");
  EXPECT_EQ(R("a{# comment #}b"), "ab");
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before one goes.
  EXPECT_EQ(R("{% if true %}\nyes\n{% endif %}\nend"), "yes\nend");
  EXPECT_EQ(R("x\n    {% if true %}\n  y\n    {% endif %}\nz"), "x\n  y\nz");
  // Neither applies to {{ }}.
  EXPECT_EQ(R("  {{ 'a' }}\nb"), "  a\nb");
  // {% generation %} tags (transformers) are dropped.
  EXPECT_EQ(R("a{% generation %}b{% endgeneration %}c"), "abc");
}

TEST(JinjaTemplateTest, ForLoopVariables) {
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
              "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}",
              R"({"xs": ["a", "b"]})"),
            "1021truefalse2 2110falsetrue2 ");
  EXPECT_EQ(R("{% for x in xs %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }};{% endfor %}",
              R"({"xs": [1, 2, 3]})"),
            "<1>2;1<2>3;2<3>;");
  EXPECT_EQ(
      R("{% for x in xs if x > 1 %}{{ x }}/{{ loop.length }} {% endfor %}", R"({"xs": [1, 2, 3]})"),
      "2/2 3/2 ");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in missing %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};"
              "{% endfor %}",
              R"({"d": {"b": 1, "a": 2}})"),
            "ba|b=1;a=2;");
  EXPECT_EQ(R("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
              "{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "0134");
  EXPECT_EQ(R("{% for x in range(1, 10, 3) %}{{ x }}{% endfor %}{% for x in range(3, 0, -1) %}"
              "{{ x }}{% endfor %}"),
            "147321");
  EXPECT_EQ(R("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"), "37");
  EXPECT_EQ(
      R("{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", R"({"xs": [1, 2, 3]})"),
      "odd even odd ");
}

TEST(JinjaTemplateTest, IfElifElse) {
  const std::string t = "{% if n > 1 %}big{% elif n == 1 %}one{% else %}small{% endif %}";
  EXPECT_EQ(R(t, R"({"n": 5})"), "big");
  EXPECT_EQ(R(t, R"({"n": 1})"), "one");
  EXPECT_EQ(R(t, R"({"n": 0})"), "small");
}

TEST(JinjaTemplateTest, SetNamespaceAndScoping) {
  EXPECT_EQ(R("{% set x = 1 %}{% set y, z = 2, 3 %}{{ x }}{{ y }}{{ z }}"), "123");
  EXPECT_EQ(R("{% set x %}a{{ 1 + 1 }}b{% endset %}[{{ x }}]"), "[a2b]");
  // A set inside a loop stays in the loop; a namespace carries state out of it.
  EXPECT_EQ(R("{% set n = 0 %}{% set ns = namespace(n=0, s='') %}{% for i in range(3) %}"
              "{% set n = n + 1 %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}"
              "{{ n }} {{ ns.n }} {{ ns.s }}"),
            "0 3 012");
  EXPECT_EQ(R("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  // A namespace that contains itself (freed at the end of the render; ASan checks the leak).
  EXPECT_EQ(R("{% set ns = namespace(a=1) %}{% set ns.self = ns %}{% set ns.l = [ns] %}"
              "{{ ns.self.self.a }}"),
            "1");
  EXPECT_EQ(R("{% set d = {'a': 1} %}{% set d.a = 2 %}"),
            "ERROR: template error at line 1, column 30: cannot assign an attribute of something "
            "that is not a namespace");
}

TEST(JinjaTemplateTest, Macros) {
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
              "{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(punct='.', name='Cy') }}"),
            "Hi Ann! Hi Bob? Hi Cy.");
  EXPECT_EQ(R("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside"
              "{% endcall %}"),
            "<inside>");
  EXPECT_EQ(R("{% macro f(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, k=3) }}"),
            "[2]{\"k\": 3}");
  // Macros see the variables of the scope they were defined in.
  EXPECT_EQ(R("{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}"), "G");
}

TEST(JinjaTemplateTest, Filters) {
  EXPECT_EQ(R("{{ '  a b \n' | trim }}|{{ 'abc' | length }}|{{ [1, 2] | length }}|"
              "{{ {'a': 1} | length }}"),
            "a b|3|2|1");
  EXPECT_EQ(R("{{ 'hello world' | upper }}|{{ 'HeLLo' | lower }}|{{ 'hello world' | title }}|"
              "{{ 'hello' | capitalize }}"),
            "HELLO WORLD|hello|Hello World|Hello");
  EXPECT_EQ(R("{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}{{ 'xyz' | first }}"), "32x");
  EXPECT_EQ(R("{{ ['a', 'b', 'c'] | join(', ') }}|{{ [1, 2] | join }}|{{ 'ab' | join('-') }}"),
            "a, b, c|12|a-b");
  EXPECT_EQ(R("{{ missing | default('dflt') }}|{{ '' | default('dflt') }}|"
              "{{ '' | default('dflt', true) }}|{{ 0 | default(5, boolean=true) }}"),
            "dflt||dflt|5");
  EXPECT_EQ(R("{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}"), "a+b+c|bba");
  EXPECT_EQ(R("{{ 42 | string }}{{ '7' | int + 1 }}|{{ '2.5' | float }}|{{ 'x' | int }}|"
              "{{ 3.9 | int }}"),
            "428|2.5|0|3");
  EXPECT_EQ(R("{{ 'ab' | list }}|{{ {'k': 'v'} | items | list }}"),
            "[\"a\", \"b\"]|[[\"k\", \"v\"]]");
  EXPECT_EQ(R("{{ '<a href=\"x\">&</a>' | escape }}|{{ '<b>' | safe }}"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt;|<b>");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ [1, 2] | reverse }}"
              "{{ 'abc' | reverse }}{{ [1, 1, 2] | unique }}"),
            "[1, 2, 3][3, 2, 1][2, 1]cba[1, 2]");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"),
            "a\n  b\n\n  c|  a\n  b");
}

TEST(JinjaTemplateTest, ObjectFilters) {
  const std::string msgs =
      R"({"m": [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                {"role": "user", "content": "u2", "name": "x"}]})";
  EXPECT_EQ(R("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='content') | "
              "join(',') }}",
              msgs),
            "u1,u2");
  EXPECT_EQ(R("{{ m | rejectattr('role', 'equalto', 'user') | list | length }}", msgs), "1");
  EXPECT_EQ(R("{{ m | selectattr('name') | map(attribute='content') | first }}", msgs), "u2");
  EXPECT_EQ(R("{{ m | selectattr('name', 'defined') | list | length }}", msgs), "1");
  EXPECT_EQ(R("{{ m | map(attribute='name', default='-') | join }}", msgs), "--x");
  EXPECT_EQ(R("{{ ['a', 'B'] | map('upper') | join }}"), "AB");
  EXPECT_EQ(R("{{ {'b': 2, 'a': 1} | dictsort }}"), "[[\"a\", 1], [\"b\", 2]]");
}

TEST(JinjaTemplateTest, ToJson) {
  const std::string ctx =
      R"({"v": {"name": "f", "args": {"z": 1, "a": [true, null, 1.5, "é\"\n"]}}})";
  EXPECT_EQ(R("{{ v | tojson }}", ctx),
            R"({"name": "f", "args": {"z": 1, "a": [true, null, 1.5, "é\"\n"]}})");
  EXPECT_EQ(R("{{ v.args | tojson(indent=2) }}", ctx),
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    1.5,\n    \"é\\\"\\n\"\n  ]\n}");
  EXPECT_EQ(R("{{ v.args | tojson(sort_keys=true) }}", ctx),
            R"({"a": [true, null, 1.5, "é\"\n"], "z": 1})");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}{{ [] | tojson(indent=2) }}"), "\"\\u00e9\"[]");
  EXPECT_EQ(R("{{ 1.0 | tojson }}|{{ '\x01' | tojson }}"), "1.0|\"\\u0001\"");
}

TEST(JinjaTemplateTest, KeyOrderFollowsTheJsonType) {
  auto tmpl = Template::Parse("{{ d | tojson }}");
  ASSERT_TRUE(tmpl.ok());
  const std::string text = R"({"d": {"b": 1, "a": 2}})";
  EXPECT_EQ(*tmpl->Render(ordered_json::parse(text)), R"({"b": 1, "a": 2})");
  EXPECT_EQ(*tmpl->Render(nlohmann::json::parse(text)), R"({"a": 2, "b": 1})");
}

TEST(JinjaTemplateTest, Tests) {
  EXPECT_EQ(R("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ x is none }}",
              R"({"x": null})"),
            "truefalsetruetrue");
  EXPECT_EQ(R("{{ 's' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}"
              "{{ [] is iterable }}{{ 's' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}"),
            "truefalsetruefalsetruetruefalsetrue");
  EXPECT_EQ(R("{{ 1 is number }}{{ 1.5 is number }}{{ 's' is number }}{{ true is boolean }}"
              "{{ 1 is boolean }}{{ 1 is integer }}{{ 1.5 is float }}"),
            "truetruefalsetruefalsetruetrue");
  EXPECT_EQ(R("{{ 3 is odd }}{{ 3 is even }}{{ 9 is divisibleby(3) }}{{ 'a' is equalto('a') }}"
              "{{ 2 is in([1, 2]) }}{{ x is not none }}{{ 2 is eq 2 }}",
              R"({"x": 1})"),
            "truefalsetruetruetruetruetrue");
  // Attributes of undefined values are undefined, not errors.
  EXPECT_EQ(R("{{ m.tool_calls is defined }}{{ missing.a.b is defined }}[{{ missing.a }}]",
              R"({"m": {}})"),
            "falsefalse[]");
}

TEST(JinjaTemplateTest, StringMethods) {
  EXPECT_EQ(R("[{{ '\n x \n'.strip() }}][{{ '\nx\n'.strip('\n') }}][{{ '\n x'.lstrip('\n') }}]"
              "[{{ 'x \n'.rstrip() }}][{{ 'xxaxx'.strip('x') }}]"),
            "[x][x][ x][x][a]");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}"),
            "[\"a\", \"b\", \"\", \"c\"][\"a\", \"b\"][\"a\", \"b c\"]");
  EXPECT_EQ(R("{{ 'x</think>y'.split('</think>')[-1] }}{{ 'abc'.startswith('ab') }}"
              "{{ 'abc'.endswith(('x', 'bc')) }}{{ 'abc'.startswith('b') }}"),
            "ytruetruefalse");
  EXPECT_EQ(
      R("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'ab cd'.title() }}{{ 'aXa'.replace('a', '') }}"
        "{{ ', '.join(['p', 'q']) }}{{ 'abc'.length }}"),
      "ABabAb CdXp, q3");
}

TEST(JinjaTemplateTest, DictMethods) {
  const std::string ctx = R"({"d": {"a": 1, "b": 2}})";
  EXPECT_EQ(R("{{ d.keys() }}{{ d.values() }}{{ d.items() }}", ctx),
            "[\"a\", \"b\"][1, 2][[\"a\", 1], [\"b\", 2]]");
  EXPECT_EQ(
      R("{{ d.get('a') }}{{ d.get('z', 'none') }}{{ d.get('z') }}|{{ d['b'] }}{{ d.b }}", ctx),
      "1none|22");
}

TEST(JinjaTemplateTest, Slicing) {
  const std::string ctx = R"({"xs": [1, 2, 3, 4], "s": "héllo"})";
  EXPECT_EQ(R("{{ xs[::-1] }}{{ xs[1:] }}{{ xs[:-1] }}{{ xs[1:3] }}{{ xs[::2] }}{{ xs[-1] }}"
              "{{ xs[10] }}",
              ctx),
            "[4, 3, 2, 1][2, 3, 4][1, 2, 3][2, 3][1, 3]4");
  EXPECT_EQ(R("{{ s[1:3] }}|{{ s[::-1] }}|{{ s[1] }}|{{ s | length }}", ctx), "él|olléh|é|5");
}

TEST(JinjaTemplateTest, Operators) {
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none_var }}|{{ 'a' + 'b' }}|{{ 'n' + 1 }}|{{ [1] + [2] }}"),
            "a1|ab|n1|[1, 2]");
  EXPECT_EQ(R("{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}"
              "{{ 'x' in undefined_var }}"),
            "truetruetruetruefalse");
  EXPECT_EQ(R("{{ 1 < 2 }}{{ 2 <= 1 }}{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ 'a' < 'b' }}"),
            "truefalsetruetruetrue");
  EXPECT_EQ(R("{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ '' and 'z' }}|{{ not 0 }}|{{ not [] }}"),
            "x|y||true|true");
  EXPECT_EQ(R("{{ 7 % 3 }}|{{ -7 % 3 }}|{{ -7 // 2 }}|{{ 2 ** 10 }}|{{ 2 * 3 + 1 }}|"
              "{{ (1 + 2) * 3 }}|{{ 1 - -1 }}|{{ 5.5 % 2 }}"),
            "1|2|-4|1024|7|9|2|1.5");
  EXPECT_EQ(R("{{ 1 / 0 }}"), "ERROR: template error at line 1, column 6: division by zero");
}

TEST(JinjaTemplateTest, TernaryAndSelect) {
  EXPECT_EQ(
      R("{{ 'y' if x else 'n' }}{{ 'y' if not x else 'n' }}[{{ 'only' if x }}]", R"({"x": false})"),
      "ny[]");
  EXPECT_EQ(R("{{ 'a' if x == 1 else 'b' if x == 2 else 'c' }}", R"({"x": 2})"), "b");
}

TEST(JinjaTemplateTest, RaiseException) {
  auto tmpl = Template::Parse("ok{{ raise_exception('Roles must alternate!') }}");
  ASSERT_TRUE(tmpl.ok());
  auto out = tmpl->Render(nlohmann::json::object());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "Roles must alternate!");
}

TEST(JinjaTemplateTest, StrftimeNow) {
  const std::string year = R("{{ strftime_now('%Y') }}");
  EXPECT_EQ(year.size(), 4u);
  EXPECT_TRUE(year[0] == '2') << year;
  EXPECT_EQ(R("{{ strftime_now('%d %B %Y') | length > 10 }}"), "true");
}

TEST(JinjaTemplateTest, SyntaxErrorsNameLineAndColumn) {
  auto t = Template::Parse("line one\n{% if x %}\n  {{ x + }}\n{% endif %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message(), "template syntax error at line 3, column 10: unexpected '}}'");
  t = Template::Parse("{% for x in xs %}no end");
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), "expected {% endfor %}")) << t.status();
  t = Template::Parse("{{ 'unterminated }}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "template syntax error at line 1, column 4: unterminated string literal");
  EXPECT_FALSE(Template::Parse("{% unknown %}").ok());
  EXPECT_FALSE(Template::Parse("{# never closed").ok());
  EXPECT_FALSE(Template::Parse("{{ x }").ok());
}

TEST(JinjaTemplateTest, RuntimeErrorsAreInvalidArgument) {
  EXPECT_EQ(R("{{ x | nosuchfilter }}", R"({"x": "s"})"),
            "ERROR: template error at line 1, column 6: unknown filter 'nosuchfilter' for string");
  EXPECT_EQ(R("{{ x is nosuchtest }}"),
            "ERROR: template error at line 1, column 6: unknown test 'nosuchtest'");
  EXPECT_EQ(R("{{ 1 + 'a' ~ none }}"),
            "ERROR: template error at line 1, column 12: cannot apply ~ to none");
  EXPECT_EQ(R("{{ x() }}", R"({"x": 1})"),
            "ERROR: template error at line 1, column 4: cannot call integer");
  EXPECT_EQ(R("{% for a, b in [1] %}{% endfor %}"),
            "ERROR: template error at line 1, column 8: cannot unpack the loop item into the loop "
            "variables");
  auto t = Template::Parse("{{ x }}");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->Render(nlohmann::json::array()).ok());
}

TEST(JinjaTemplateTest, LimitsStopHostileTemplates) {
  EXPECT_EQ(R("{% for i in range(100000000) %}{% endfor %}"),
            "ERROR: template error at line 1, column 13: range: too many items");
  EXPECT_TRUE(absl::StartsWith(
      R("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
      "ERROR: template limit: more than 1000000 loop iterations"));
  EXPECT_TRUE(absl::StartsWith(R("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
                               "ERROR: template limit: nesting or recursion deeper than"));
  EXPECT_TRUE(absl::StartsWith(
      R("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}"),
      "ERROR: template limit: string larger than"));
  auto t = Template::Parse("{% for i in range(1000) %}0123456789{% endfor %}");
  ASSERT_TRUE(t.ok());
  RenderLimits limits;
  limits.max_output_bytes = 5000;
  auto out = t->Render(ordered_json::object(), limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "template limit: output larger than 5000 bytes");
  limits = RenderLimits{};
  limits.max_steps = 1000;
  EXPECT_FALSE(t->Render(ordered_json::object(), limits).ok());
  // Deep nesting is a parse error, not a stack overflow.
  EXPECT_FALSE(
      Template::Parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").ok());
  std::string nested;
  for (int i = 0; i < 2000; ++i) nested += "{% if true %}";
  EXPECT_FALSE(Template::Parse(nested).ok());
}

TEST(JinjaTemplateTest, RenderIsConstAndThreadSafe) {
  auto tmpl = Template::Parse(
      "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{% endfor %}{{ n }}");
  ASSERT_TRUE(tmpl.ok());
  const Template copy = *tmpl;  // copies share the parsed program
  std::vector<std::string> outputs(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) {
        ordered_json ctx = {{"messages", {{{"role", "user"}, {"content", " hi "}}}}, {"n", i}};
        auto out = (i % 2 ? copy : *tmpl).Render(ctx);
        outputs[i] = out.ok() ? *out : "error";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(outputs[i], "<user>hi" + std::to_string(i));
}

}  // namespace
}  // namespace moe::model::jinja
