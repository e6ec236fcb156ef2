#include "common/timestamp.h"

#include <chrono>
#include <cstdio>

namespace tearline {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian), Howard Hinnant's algorithm.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

namespace {
// The parts of "YYYY-MM-DDTHH:MM:SS[.f+]Z": seconds since the epoch and the
// fractional digits (empty when none). False for anything else.
bool ParseParts(std::string_view s, int64_t* seconds, std::string_view* fraction) {
  // YYYY-MM-DDTHH:MM:SS = 19 chars, then optional .digits, then Z.
  int y, mo, d, h, mi, se;
  if (s.size() < 20) return false;
  if (!Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || s[10] != 'T' || !Digits(s, 11, 2, &h) || s[13] != ':' ||
      !Digits(s, 14, 2, &mi) || s[16] != ':' || !Digits(s, 17, 2, &se)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) || h > 23 || mi > 59 || se > 60) return false;
  size_t pos = 19;
  *fraction = {};
  if (s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
    *fraction = s.substr(start, pos - start);
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return false;
  *seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  return true;
}
}  // namespace

std::optional<Timestamp> ParseTimestamp(std::string_view s) {
  Timestamp ts;
  std::string_view fraction;
  if (!ParseParts(s, &ts.seconds, &fraction)) return std::nullopt;
  ts.fraction.assign(fraction);
  return ts;
}

std::optional<int64_t> ParseMicros(std::string_view s) {
  int64_t seconds;
  std::string_view fraction;
  if (!ParseParts(s, &seconds, &fraction)) return std::nullopt;
  int64_t us = 0;
  for (size_t i = 0; i < 6; ++i) us = us * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  return seconds * 1000000 + us;
}

std::string VersionKey(std::string_view text) {
  auto ts = ParseTimestamp(text);
  if (!ts) return {};
  std::string frac = ts->fraction;
  while (frac.size() > 9 && frac.back() == '0') frac.pop_back();
  if (frac.size() < 9) frac.append(9 - frac.size(), '0');
  std::string key;
  if (text[17] == '6') {
    // A leap second: rebuild the date part from the instant so ":60" sorts after ":59".
    key = FormatMicros(ts->seconds * 1000000);
    key.resize(19);
  } else {
    key.assign(text.substr(0, 19));
  }
  key += '.';
  key += frac;
  return key;
}

int64_t ToMicros(const Timestamp& ts) {
  int64_t us = 0;
  for (size_t i = 0; i < 6; ++i) us = us * 10 + (i < ts.fraction.size() ? ts.fraction[i] - '0' : 0);
  return ts.seconds * 1000000 + us;
}

std::string FormatMicros(int64_t micros) {
  int64_t secs = micros / 1000000;
  int64_t us = micros % 1000000;
  if (us < 0) {
    us += 1000000;
    --secs;
  }
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  // civil_from_days (Hinnant)
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  if (y < 0 || y > 9999) {  // outside RFC 3339's four-digit years: as printf writes it
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ", static_cast<long long>(y), m, d,
                  static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                  static_cast<long long>(rem % 60), static_cast<long long>(us));
    return buf;
  }
  // Digit by digit: a page's two X-TAXII-Date-Added headers, its manifest's date_added values
  // and every audit entry's time are written here (snprintf was ~1.5% of a random page's CPU).
  std::string out = "0000-00-00T00:00:00.000000Z";
  auto put = [&out](size_t at, int64_t v, int digits) {
    for (int k = digits - 1; k >= 0; --k, v /= 10) out[at + static_cast<size_t>(k)] = static_cast<char>('0' + v % 10);
  };
  put(0, y, 4);
  put(5, m, 2);
  put(8, d, 2);
  put(11, rem / 3600, 2);
  put(14, rem / 60 % 60, 2);
  put(17, rem % 60, 2);
  put(20, us, 6);
  return out;
}

int64_t NowMicros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

int CompareTimestamps(const Timestamp& a, const Timestamp& b) {
  if (a.seconds != b.seconds) return a.seconds < b.seconds ? -1 : 1;
  size_t n = std::max(a.fraction.size(), b.fraction.size());
  for (size_t i = 0; i < n; ++i) {
    char ca = i < a.fraction.size() ? a.fraction[i] : '0';
    char cb = i < b.fraction.size() ? b.fraction[i] : '0';
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return 0;
}

}  // namespace tearline
