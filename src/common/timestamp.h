// RFC 3339 timestamps as STIX 2.1 uses them (§2.15): always UTC with "Z",
// optional fractional seconds of any length, kept exactly as given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tearline {

struct Timestamp {
  int64_t seconds = 0;         //!< seconds since the Unix epoch (leap second 60 folds onto :59 + 1)
  std::string fraction;        //!< fractional digits as given, without the dot ("" when none)
  int fraction_digits() const { return static_cast<int>(fraction.size()); }
};

//! Parses "YYYY-MM-DDTHH:MM:SS[.f+]Z". Returns nullopt for anything else,
//! including impossible dates (2023-02-29), offsets other than Z and a missing T.
//! Second 60 (a leap second) is accepted, as RFC 3339 allows.
std::optional<Timestamp> ParseTimestamp(std::string_view text);

//! ParseTimestamp() then ToMicros(), without building the Timestamp.
std::optional<int64_t> ParseMicros(std::string_view text);

//! A string that sorts like the instant: "YYYY-MM-DDTHH:MM:SS.fffffffff" with at
//! least 9 fractional digits (more when given; trailing zeros beyond 9 removed).
//! Two spellings of one instant (".1Z" and ".100Z") give the same key, and keys
//! compare with plain byte order. Empty for unparseable input.
std::string VersionKey(std::string_view text);

//! Microseconds since the epoch, truncating sub-microsecond digits.
int64_t ToMicros(const Timestamp& ts);

//! Formats microseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ".
std::string FormatMicros(int64_t micros);

//! Current UTC time in microseconds since the epoch.
int64_t NowMicros();

//! Compares two parsed timestamps by instant: <0, 0, >0.
int CompareTimestamps(const Timestamp& a, const Timestamp& b);

}  // namespace tearline
