#include "env_owner.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "args.h"
#include "poller.h"

namespace mob {

bool EnvOwner::Install(napi_env env) {
  auto* owner = new (std::nothrow) EnvOwner();
  if (owner == nullptr) {
    napi_throw_error(env, nullptr, "mob: out of memory");
    return false;
  }
  if (napi_set_instance_data(env, owner, Finalize, nullptr) != napi_ok) {
    delete owner;
    return Fail(env);
  }
  return true;
}

EnvOwner* EnvOwner::Of(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok || data == nullptr) {
    Fail(env);
    return nullptr;
  }
  return static_cast<EnvOwner*>(data);
}

void EnvOwner::Finalize(napi_env, void* data, void*) { delete static_cast<EnvOwner*>(data); }

EnvOwner::~EnvOwner() {
  while (pollers_ != nullptr) pollers_->CloseAtTeardown();  // Detaches itself.
  for (size_t fd = 0; fd < capacity_; fd++) {
    // EINTR still releases the descriptor (see sockets::Close): nothing to retry.
    if (owned_[fd] != 0) close(static_cast<int>(fd));
  }
  std::free(owned_);
}

int EnvOwner::Own(int fd) noexcept {
  const size_t index = static_cast<size_t>(fd);
  if (index >= capacity_) {
    size_t grown = capacity_ == 0 ? 1024 : capacity_;
    while (grown <= index) grown *= 2;
    auto* table = static_cast<uint8_t*>(std::realloc(owned_, grown));
    if (table == nullptr) return -ENOMEM;
    std::memset(table + capacity_, 0, grown - capacity_);
    owned_ = table;
    capacity_ = grown;
  }
  owned_[index] = 1;
  return 0;
}

bool EnvOwner::Disown(int fd) noexcept {
  const size_t index = static_cast<size_t>(fd);
  if (fd < 0 || index >= capacity_ || owned_[index] == 0) return false;
  owned_[index] = 0;
  return true;
}

bool EnvOwner::Owns(int fd) const noexcept {
  const size_t index = static_cast<size_t>(fd);
  return fd >= 0 && index < capacity_ && owned_[index] != 0;
}

void EnvOwner::Attach(Poller* poller) noexcept {
  poller->next_owned_ = pollers_;
  poller->prev_owned_ = nullptr;
  if (pollers_ != nullptr) pollers_->prev_owned_ = poller;
  pollers_ = poller;
}

void EnvOwner::Detach(Poller* poller) noexcept {
  if (poller->prev_owned_ != nullptr) {
    poller->prev_owned_->next_owned_ = poller->next_owned_;
  } else if (pollers_ == poller) {
    pollers_ = poller->next_owned_;
  }
  if (poller->next_owned_ != nullptr) poller->next_owned_->prev_owned_ = poller->prev_owned_;
  poller->next_owned_ = nullptr;
  poller->prev_owned_ = nullptr;
}

}  // namespace mob
