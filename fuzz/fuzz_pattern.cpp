// libFuzzer target: any bytes through the STIX pattern parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pattern/pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = tearline::pattern::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (r.ok() && r->root && r->root->comparison) (void)r->root->comparison->path.ToString();
  return 0;
}
