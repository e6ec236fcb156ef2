// Small text checks shared by the STIX validator and the pattern language.
#pragma once

#include <cctype>
#include <string_view>

namespace tearline {

//! Standard base64 with '=' padding only at the end, length a multiple of 4 (RFC 4648 §4).
inline bool IsBase64(std::string_view s) {
  if (s.size() % 4 != 0) return false;
  size_t pad = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '=') {
      if (i + 2 < s.size()) return false;
      ++pad;
    } else if (pad || !(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) {
      return false;
    }
  }
  return pad <= 2;
}

}  // namespace tearline
