// Command-line flags for one subcommand, each with a MOE_* environment twin.
//
//   FlagSet flags("moe generate", "Generate a completion.");
//   std::string model;
//   flags.AddString("model", &model, "model folder");      // --model, env MOE_MODEL
//   absl::Status s = flags.Parse(argc, argv);              // flags win over environment
//
// Precedence: default < environment (MOE_<NAME>, dashes become underscores) < command line.
// Accepts "--name value", "--name=value", and for bools "--name", "--no-name", "--name=false".
#ifndef MOE_COMMON_FLAGS_H_
#define MOE_COMMON_FLAGS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moe {

// An A/B switch read from the environment: on unless the variable `name` is set to 0.
bool EnvSwitchOn(const char* name);

// An integer knob read from the environment: the variable's value when it is an integer in
// [min, max], else `fallback` (unset, empty, malformed or out of range).
int64_t EnvInt(const char* name, int64_t fallback, int64_t min, int64_t max);

class FlagSet {
 public:
  FlagSet(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)) {}

  void AddString(const std::string& name, std::string* value, const std::string& help);
  void AddInt(const std::string& name, int64_t* value, const std::string& help);
  void AddInt(const std::string& name, int* value, const std::string& help);
  void AddDouble(const std::string& name, double* value, const std::string& help);
  void AddBool(const std::string& name, bool* value, const std::string& help);

  // Parses argv[0..argc) (argv[0] is NOT skipped: pass the arguments after the subcommand).
  // Reads the environment twins first. Positional arguments are collected in positional().
  // "--help" sets help_requested() and returns OK.
  absl::Status Parse(int argc, const char* const* argv);
  // Same with an explicit environment lookup (tests).
  absl::Status Parse(int argc, const char* const* argv,
                     const std::function<const char*(const char*)>& getenv);

  // For a subcommand's entry point: parses, and if the command should end now returns its exit
  // code: 0 after printing usage for --help, 2 after printing the error and usage to stderr
  // (bad flag, or a positional argument when `allow_positional` is false). nullopt: go on.
  std::optional<int> ParseCommandLine(int argc, const char* const* argv,
                                      bool allow_positional = false);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  // Names of the flags given on the command line or through the environment.
  bool WasSet(const std::string& name) const;
  std::string Usage() const;
  // "name=value ..." for logging the effective config once at start.
  std::string Describe() const;

  static std::string EnvName(const std::string& flag_name);

 private:
  enum class Kind { kString, kInt64, kInt, kDouble, kBool };
  struct Flag {
    std::string name;
    Kind kind;
    void* ptr;
    std::string help;
    std::string default_text;
    bool set = false;
  };
  absl::Status Assign(Flag& flag, const std::string& text, const std::string& source);
  Flag* Find(const std::string& name);
  void Add(const std::string& name, Kind kind, void* ptr, const std::string& help);
  std::string ValueText(const Flag& flag) const;

  std::string command_;
  std::string summary_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace moe

#endif  // MOE_COMMON_FLAGS_H_
