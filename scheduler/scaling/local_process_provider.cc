#include "scheduler/scaling/local_process_provider.h"

#include <signal.h>

#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moe::scheduler {

LocalProcessProvider::LocalProcessProvider(LocalProcessProviderOptions options)
    : options_(std::move(options)), binary_(options_.binary) {
  if (binary_.empty()) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    binary_ = ec ? "moe" : self.string();
  }
}

LocalProcessProvider::~LocalProcessProvider() { StopAll(options_.stop_grace); }

void LocalProcessProvider::Reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    int code = 0;
    if (it->process->Exited(&code)) {
      MOE_LOG_WARN("expert instance {} exited on its own (code {})", it->name, code);
      exited_.push_back({it->name, code});
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  const absl::Time now = absl::Now();
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    int code = 0;
    if (it->process->Exited(&code)) {
      MOE_LOG_INFO("expert instance {} stopped (code {})", it->name, code);
      it = stopping_.erase(it);
    } else if (now >= it->kill_at) {
      MOE_LOG_WARN("expert instance {} did not stop in {}: SIGKILL", it->name,
                   absl::FormatDuration(options_.stop_grace));
      it->process->Kill();
      it = stopping_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<int> LocalProcessProvider::Current() {
  Reap();
  return static_cast<int>(running_.size());
}

absl::Status LocalProcessProvider::ScaleTo(int n) {
  if (n < 0) return absl::InvalidArgumentError("instance count must be >= 0");
  Reap();
  while (static_cast<int>(running_.size()) > n) {
    Child c = std::move(running_.back());
    running_.pop_back();
    MOE_LOG_INFO("stopping expert instance {} (pid {})", c.name, c.process->pid());
    if (c.process->pid() > 0) kill(c.process->pid(), SIGTERM);
    c.kill_at = absl::Now() + options_.stop_grace;
    stopping_.push_back(std::move(c));
  }
  while (static_cast<int>(running_.size()) < n) {
    Child c;
    c.k = next_k_++;
    c.name = absl::StrCat(options_.name_prefix, "-", c.k);
    std::vector<std::string> argv = {binary_,         "expert",
                                     "--model",       options_.model,
                                     "--scheduler",   options_.scheduler,
                                     "--host",        options_.host,
                                     "--port",        "0",
                                     "--admin-port",  "0",
                                     "--instance-id", c.name};
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    c.process = std::make_unique<Subprocess>(argv);
    if (c.process->pid() <= 0) {
      return absl::InternalError(absl::StrCat("could not start expert instance ", c.name));
    }
    MOE_LOG_INFO("started expert instance {} (pid {})", c.name, c.process->pid());
    running_.push_back(std::move(c));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LocalProcessProvider::NextToRemove() {
  Reap();
  if (running_.empty()) return absl::NotFoundError("no running expert instance");
  return running_.back().name;
}

std::vector<InstanceExit> LocalProcessProvider::TakeExited() {
  Reap();
  return std::exchange(exited_, {});
}

std::string LocalProcessProvider::Describe() const {
  return absl::StrCat("local processes (", binary_, " expert, names ", options_.name_prefix,
                      "-<k>)");
}

std::vector<std::string> LocalProcessProvider::Running() {
  Reap();
  std::vector<std::string> names;
  for (const Child& c : running_) names.push_back(c.name);
  return names;
}

int LocalProcessProvider::Stopping() {
  Reap();
  return static_cast<int>(stopping_.size());
}

void LocalProcessProvider::StopAll(absl::Duration grace) {
  const absl::Time kill_at = absl::Now() + grace;
  for (Child& c : running_) {
    if (c.process->pid() > 0) kill(c.process->pid(), SIGTERM);
    c.kill_at = kill_at;
    stopping_.push_back(std::move(c));
  }
  running_.clear();
  for (Child& c : stopping_) c.kill_at = std::min(c.kill_at, kill_at);
  while (!stopping_.empty()) {
    Reap();  // SIGKILLs what is past kill_at
    if (!stopping_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace moe::scheduler
