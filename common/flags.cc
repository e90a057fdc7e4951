#include "common/flags.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace moe {

std::string FlagSet::EnvName(const std::string& flag_name) {
  return "MOE_" + absl::AsciiStrToUpper(absl::StrReplaceAll(flag_name, {{"-", "_"}}));
}

void FlagSet::Add(const std::string& name, Kind kind, void* ptr, const std::string& help) {
  Flag flag{name, kind, ptr, help, "", false};
  flag.default_text = ValueText(flag);
  flags_.push_back(std::move(flag));
}
void FlagSet::AddString(const std::string& n, std::string* v, const std::string& h) {
  Add(n, Kind::kString, v, h);
}
void FlagSet::AddInt(const std::string& n, int64_t* v, const std::string& h) {
  Add(n, Kind::kInt64, v, h);
}
void FlagSet::AddInt(const std::string& n, int* v, const std::string& h) {
  Add(n, Kind::kInt, v, h);
}
void FlagSet::AddDouble(const std::string& n, double* v, const std::string& h) {
  Add(n, Kind::kDouble, v, h);
}
void FlagSet::AddBool(const std::string& n, bool* v, const std::string& h) {
  Add(n, Kind::kBool, v, h);
}

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.set;
  }
  return false;
}

std::string FlagSet::ValueText(const Flag& f) const {
  switch (f.kind) {
    case Kind::kString: return *static_cast<std::string*>(f.ptr);
    case Kind::kInt64: return absl::StrCat(*static_cast<int64_t*>(f.ptr));
    case Kind::kInt: return absl::StrCat(*static_cast<int*>(f.ptr));
    case Kind::kDouble: return absl::StrCat(*static_cast<double*>(f.ptr));
    case Kind::kBool: return *static_cast<bool*>(f.ptr) ? "true" : "false";
  }
  return "";
}

absl::Status FlagSet::Assign(Flag& f, const std::string& text, const std::string& source) {
  auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": --", f.name, " expects ", what, ", got '", text, "'"));
  };
  switch (f.kind) {
    case Kind::kString:
      *static_cast<std::string*>(f.ptr) = text;
      break;
    case Kind::kInt64: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) return bad("an integer");
      *static_cast<int64_t*>(f.ptr) = v;
      break;
    }
    case Kind::kInt: {
      int v;
      if (!absl::SimpleAtoi(text, &v)) return bad("an integer");
      *static_cast<int*>(f.ptr) = v;
      break;
    }
    case Kind::kDouble: {
      double v;
      if (!absl::SimpleAtod(text, &v)) return bad("a number");
      *static_cast<double*>(f.ptr) = v;
      break;
    }
    case Kind::kBool: {
      bool v;
      if (!absl::SimpleAtob(text, &v)) return bad("true or false");
      *static_cast<bool*>(f.ptr) = v;
      break;
    }
  }
  f.set = true;
  return absl::OkStatus();
}

bool EnvSwitchOn(const char* name) {
  const char* env = std::getenv(name);
  return env == nullptr || std::atoi(env) != 0;
}

int64_t EnvInt(const char* name, int64_t fallback, int64_t min, int64_t max) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(env, &end, 10);
  if (*end != '\0' || errno != 0 || v < min || v > max) return fallback;
  return v;
}

absl::Status FlagSet::Parse(int argc, const char* const* argv) {
  return Parse(argc, argv, [](const char* n) { return std::getenv(n); });
}

absl::Status FlagSet::Parse(int argc, const char* const* argv,
                            const std::function<const char*(const char*)>& getenv) {
  for (Flag& f : flags_) {
    std::string env = EnvName(f.name);
    if (const char* v = getenv(env.c_str()); v != nullptr && *v != '\0') {
      if (absl::Status s = Assign(f, v, env); !s.ok()) return s;
    }
  }
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      if (arg == "--") {
        for (++i; i < argc; ++i) positional_.push_back(argv[i]);
        break;
      }
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* f = Find(name);
    if (f == nullptr && !has_value && name.rfind("no-", 0) == 0) {
      Flag* neg = Find(name.substr(3));
      if (neg != nullptr && neg->kind == Kind::kBool) {
        if (absl::Status s = Assign(*neg, "false", "command line"); !s.ok()) return s;
        continue;
      }
    }
    if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!has_value) {
      if (f->kind == Kind::kBool) {
        value = "true";
      } else {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
        }
        value = argv[++i];
      }
    }
    if (absl::Status s = Assign(*f, value, "command line"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::optional<int> FlagSet::ParseCommandLine(int argc, const char* const* argv,
                                             bool allow_positional) {
  absl::Status s = Parse(argc, argv);
  if (s.ok() && !allow_positional && !positional_.empty()) {
    s = absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional_[0], "'"));
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n\n%s", command_.c_str(), std::string(s.message()).c_str(),
                 Usage().c_str());
    return 2;
  }
  if (help_requested_) {
    std::printf("%s", Usage().c_str());
    return 0;
  }
  return std::nullopt;
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", command_, " [flags]\n\n", summary_, "\n\nflags:\n");
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("  --", f.name);
    if (f.kind != Kind::kBool) absl::StrAppend(&left, " VALUE");
    if (left.size() < 28) left.resize(28, ' ');
    absl::StrAppend(&out, left, " ", f.help);
    if (!f.default_text.empty()) absl::StrAppend(&out, " (default ", f.default_text, ")");
    absl::StrAppend(&out, " [env ", EnvName(f.name), "]\n");
  }
  return out;
}

std::string FlagSet::Describe() const {
  std::string out;
  for (const Flag& f : flags_) {
    absl::StrAppend(&out, out.empty() ? "" : " ", f.name, "=", ValueText(f));
  }
  return out;
}

}  // namespace moe
