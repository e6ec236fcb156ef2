// STIX identifiers (§2.9): "object-type--UUID", and UUID helpers.
#pragma once

#include <string>
#include <string_view>

namespace tearline::stix {

//! Lowercase a-z, 0-9 and hyphen, 3..250 chars, no leading/trailing or double
//! hyphen-free rule beyond that (§3.1, §11.2 Custom Objects).
bool IsValidTypeName(std::string_view type);

//! ASCII a-z, 0-9, underscore, 3..250 chars (§3.1, §11.1 Custom Properties).
bool IsValidPropertyName(std::string_view name);

//! Parses the UUID text; returns its version (1..8) or 0 if it is not an
//! RFC 4122/9562 UUID in canonical lowercase-or-uppercase 8-4-4-4-12 form with
//! the RFC variant bits.
int UuidVersion(std::string_view uuid);

struct IdParts {
  std::string_view type;
  std::string_view uuid;
};

//! Splits "type--uuid" at the first "--" (type names cannot contain "--").
//! Returns false when there is no "--".
bool SplitId(std::string_view id, IdParts* parts);

//! Random UUIDv4 as text.
std::string NewUuid4();

//! A new random UUIDv7 (RFC 9562 §5.7): the Unix time in milliseconds in its first 48 bits,
//! then random bits; ids made later sort after earlier ones (within a millisecond, in any
//! order). For keys of our own that a B-tree should receive in order (TAXII status ids).
std::string NewUuid7();

//! Name-based UUIDv5 (SHA-1) in `namespace_uuid` (canonical text form).
std::string Uuid5(std::string_view namespace_uuid, std::string_view name);

//! The id an object republished with changes by node `node_identity` gets (STIX 2.1
//! §3.6): same type, UUIDv5 of `original_id` in the namespace of the node identity's UUID.
std::string DerivedId(std::string_view original_id, std::string_view node_identity);

//! The STIX namespace for deterministic SCO ids (§2.9).
inline constexpr std::string_view kStixScoNamespace = "00abedb4-aa42-466c-9c01-fed23315a9b7";

}  // namespace tearline::stix
