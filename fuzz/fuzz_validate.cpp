// libFuzzer target: any bytes through the whole STIX validator, as a bundle and as JSON lines.
// Built only with clang (make sanitize); crashes, leaks and UB are the failures.
#include <cstddef>
#include <cstdint>
#include <string>

#include "stix/stix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tearline::stix::Validator validator;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto r = validator.Validate(bytes);
  for (const auto& o : r.objects) (void)tearline::stix::CanonicalJson(o.json);
  (void)validator.Validate(bytes, tearline::stix::Form::kJsonLines);
  return 0;
}
